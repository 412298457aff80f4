"""Reading what subscribers type: case, Polish letters, spacing and phone numbers forgiven.

``fold`` maps text to upper-case ASCII with single spaces (``Włącz  roam`` → ``WLACZ ROAM``), so
the keyword table only lists plain spellings. Arguments keep their original form because an
address or a description is written the way the subscriber wants it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from dialogs.errors import DialogInputError

_SPACES = re.compile(r"\s+")
# Control characters and invisible format marks (zero-width space, BOM, direction marks, soft
# hyphen): handsets and copy-paste insert them, subscribers never mean them, and echoing them
# back in a reply would put a NUL or a direction override into an SMS.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)
_NOT_DECOMPOSED = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss"})


def fold(text: str) -> str:
    """Upper-case ASCII, Polish letters stripped of diacritics, single spaces."""
    decomposed = unicodedata.normalize("NFKD", _INVISIBLE.sub("", text).translate(_NOT_DECOMPOSED))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", plain).strip().upper()


def squeeze(text: str) -> str:
    """Single spaces, trimmed, invisible marks dropped, original letters kept."""
    return _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()


@dataclass(frozen=True, slots=True)
class Command:
    """A recognised keyword: ``name`` is the command, ``lang`` how it was asked (None: neutral)."""

    name: str
    lang: str | None
    args: str  # original text after the keyword, spaces squeezed
    words: tuple[str, ...]  # the folded arguments, split


def parse_command(text: str, table: dict[str, tuple[str, str | None]]) -> Command | None:
    """The command ``text`` starts with, by the folded keyword ``table``; None when unknown."""
    clean = squeeze(text)
    if not clean:
        return None
    head, _, rest = clean.partition(" ")
    entry = table.get(fold(head))
    if entry is None:
        return None
    name, lang = entry
    return Command(name, lang, rest, tuple(fold(rest).split()))


_NUMBER_TOKENS = re.compile(r"\+?\d+")


def split_numbers(text: str) -> list[str]:
    """Phone numbers in free text, each as E.164 without ``+`` (``48601234567``).

    Spaces and dashes inside a number are allowed (``+48 601-234-567``); numbers may be separated by
    spaces, commas or semicolons. Digit groups are joined until they make a 9-digit national or an
    11-digit ``48…`` number. What cannot be one is refused with what it is: a group too short to be
    a number before the next one starts (``5011111 502222222``: 7 digits), too long, or foreign.
    """
    numbers: list[str] = []
    # Full-width or Arabic-Indic digits are digits to a subscriber, but stored and shown as ASCII.
    text = re.sub(r"\d", lambda m: str(unicodedata.digit(m.group())), text)
    for chunk in re.split(r"[,;]", text):
        tokens = _NUMBER_TOKENS.findall(chunk.replace("-", "").replace("(", "").replace(")", ""))
        current = ""
        for i, token in enumerate(tokens):
            joined = current + token
            if current and not _international(joined) and len(_digits(joined)) > 9:
                raise _not_a_number(current)
            current += token
            digits = _digits(current)
            if _international(current):
                if len(digits) >= 2 and not digits.startswith("48"):
                    raise DialogInputError(
                        "invalid.numbers.not_polish", number=_foreign(digits, tokens[i + 1 :])
                    )
                if len(digits) > 11:
                    raise _not_a_number(current)
                if len(digits) == 11:
                    numbers.append(digits)
                    current = ""
            elif len(digits) == 9:
                numbers.append("48" + digits)
                current = ""
        if current:
            raise _not_a_number(current)
    return numbers


def _foreign(digits: str, following: list[str]) -> str:
    """The whole foreign number: the groups after its country code, up to E.164's 15 digits,
    stopping at a group that is a Polish number by itself."""
    for token in following:
        if token.startswith("+") or len(token) == 9 or len(digits) + len(token) > 15:
            break
        digits += token
    return f"+{digits}"


def _digits(number: str) -> str:
    return number.lstrip("+").lstrip("0")


def _international(number: str) -> bool:
    digits = _digits(number)
    return number.startswith(("+", "00")) or (digits.startswith("48") and len(digits) > 9)


def _not_a_number(current: str) -> DialogInputError:
    """What ``current`` is: too short or too long for a number (counted in its digits)."""
    shown = current if len(current) <= 16 else current[:15] + "…"
    digits = len(current.lstrip("+"))
    if _international(current):
        return DialogInputError("input.bad_number", number=shown)
    key = "input.short_number" if len(_digits(current)) < 9 else "input.long_number"
    return DialogInputError(key, number=shown, digits=digits)


def menu_number(text: str) -> int | None:
    """A menu answer as a number (``" 3 "`` → 3); None for anything else."""
    clean = text.strip()
    return int(clean) if clean.isdigit() and len(clean) <= 3 else None


def dialled_path(text: str) -> list[str] | None:
    """``*100#`` → ``[]``, ``*100*3*1#`` → ``["3", "1"]``; None when not a dialled code."""
    clean = text.strip().replace(" ", "")
    if not (clean.startswith("*") and clean.endswith("#")):
        return None
    parts = clean[1:-1].split("*")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return parts[1:]
