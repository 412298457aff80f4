"""Text → SMPP short_message octets: pick the encoding, split into parts.

Theory of operation
-------------------
Outbound, :func:`encode_message` chooses the cheapest alphabet that carries the text exactly:
GSM-7 when every character is in GSM 03.38 (an extension character costs two septets, still less
than a UCS-2 unit, so GSM-7 never needs more parts than UCS-2); otherwise, per deployment policy,
UCS-2 at once (``"ucs2"``), first the transliteration of Polish letters and typographic
punctuation (``"transliterate"``), with UCS-2 of the original text when even that is not GSM-7,
or the original in UCS-2 when that costs no more parts than the transliteration, else the
transliteration (``"auto"``: Polish letters whenever they are free). A message is never sent with
``?`` in place of a character. A USSD screen is one message: under ``"auto"`` it keeps its letters
when it fits one UCS-2 USSD string (80 characters), else it is transliterated.

Splitting works on characters, never octets: a part ends where the next character would not fit,
so an ESC + septet pair or a UTF-16 surrogate pair never straddles two parts. Limits per part:

================  ==========  =================  ==================
long mode         single      GSM-7 per part     UCS-2 units/part
================  ==========  =================  ==================
``udh`` (0x00)    160 / 70    153                67
``udh16`` (0x08)  160 / 70    152                66
``sar`` (TLVs)    160 / 70    153                67
``payload``       —           one part, message_payload, no limit but 255×153
================  ==========  =================  ==================

SAR parts carry no UDH themselves, but the SMSC builds one for the handset, so they get the UDH
sizes. Latin-1 (data_coding 3) counts octets: 140 single, 134/133 with UDH.

Inbound, the other way, is :mod:`gateway.sms.decoding`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.smpp.pdu import ESM_UDHI
from gateway.sms.decoding import IEI_CONCAT_8, IEI_CONCAT_16
from gateway.sms.gsm import (
    TextDecodeError,
    TextEncodeError,
    TextError,
    encode_septets,
    fill_bits_after_udh,
    pack_septets,
    septets_or_none,
)

__all__ = [
    "Part",
    "TextDecodeError",
    "TextEncodeError",
    "TextError",
    "TooManyParts",
    "UssdTooLong",
    "encode_message",
    "encode_ussd",
    "transliterate",
    "ussd_text",
]

Policy = Literal["auto", "ucs2", "transliterate"]
POLICIES: tuple[Policy, ...] = ("auto", "ucs2", "transliterate")


def text_policy(name: str) -> Policy:
    """A configured policy name as :data:`Policy`; raises :class:`TextEncodeError` for others."""
    for policy in POLICIES:
        if name == policy:
            return policy
    raise TextEncodeError(f"policy must be auto, ucs2 or transliterate, got {name!r}")


LongMode = Literal["udh", "udh16", "sar", "payload"]

DC_DEFAULT = 0x00  # SMSC default alphabet: GSM-7, one septet per octet
DC_IA5 = 0x01
DC_BINARY = 0x02
DC_LATIN1 = 0x03
DC_BINARY_2 = 0x04
DC_UCS2 = 0x08

MAX_PARTS = 255
USSD_MAX_CHARS = 182
#: A USSD string holds 160 octets: 182 GSM-7 characters packed, 80 in UCS-2.
USSD_UCS2_CHARS = 80


class TooManyParts(TextEncodeError):
    """The text needs more than 255 parts, the most a concatenated SMS can have."""

    def __init__(self, parts: int) -> None:
        super().__init__(f"text needs {parts} parts, at most {MAX_PARTS} are possible")
        self.parts = parts


class UssdTooLong(TextEncodeError):
    """A USSD screen is longer than 182 characters; USSD cannot be split."""

    def __init__(self, length: int) -> None:
        super().__init__(f"USSD text has {length} characters, at most {USSD_MAX_CHARS}")
        self.length = length


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of message: the octets, their data_coding, esm_class bits, TLVs.

    ``esm_class`` holds only the UDHI bit (0x40) or 0; the caller ORs in its own bits. ``text`` is
    the piece of the message this part carries, for logs and the simulator.
    """

    short_message: bytes
    data_coding: int
    esm_class: int = 0
    tlvs: dict[str, Any] = field(default_factory=dict)
    text: str = ""


# -- transliteration -------------------------------------------------------------------------

_TRANSLIT: Mapping[str, str] = {
    "ą": "a",
    "ć": "c",
    "ę": "e",
    "ł": "l",
    "ń": "n",
    "ó": "o",
    "ś": "s",
    "ź": "z",
    "ż": "z",
    "Ą": "A",
    "Ć": "C",
    "Ę": "E",
    "Ł": "L",
    "Ń": "N",
    "Ó": "O",
    "Ś": "S",
    "Ź": "Z",
    "Ż": "Z",
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": "'",  # ‚
    "\u201b": "'",  # ‛
    "\u2032": "'",  # ′
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u201f": '"',  # ‟
    "\u2033": '"',  # ″
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2026": "...",  # ellipsis
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",  # thin space
    "\u00b7": ".",  # middle dot
    "\u2022": "*",  # bullet
}


# The same mapping as a list indexed by code point, every code point up to the last key mapped
# (most to themselves): str.translate with a dict raises and clears a KeyError inside for each
# character it leaves alone, ~5x slower on a Polish reply. Past the list it leaves them alone too.
_TRANSLIT_LIST: list[str] = [
    _TRANSLIT.get(chr(i), chr(i)) for i in range(max(map(ord, _TRANSLIT)) + 1)
]


def transliterate(text: str) -> str:
    """Polish letters and typographic punctuation → their GSM-7 look-alikes; the rest unchanged."""
    return text.translate(_TRANSLIT_LIST)


# -- choosing the encoding -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scheme:
    data_coding: int
    single: int  # units in a lone part
    per_udh8: int  # units per part with an 8-bit concatenation UDH (and SAR)
    per_udh16: int


_GSM = _Scheme(DC_DEFAULT, 160, 153, 152)
_IA5 = _Scheme(DC_IA5, 160, 153, 152)
_LATIN1 = _Scheme(DC_LATIN1, 140, 134, 133)
_UCS2 = _Scheme(DC_UCS2, 70, 67, 66)


_BASES: Mapping[int, _Scheme] = {DC_DEFAULT: _GSM, DC_IA5: _IA5, DC_LATIN1: _LATIN1}


def _measured(text: str, scheme: _Scheme) -> bytes | None:
    """Octets that measure ``text`` in a 7/8-bit scheme's units, or None when it does not fit
    (checking and encoding are one pass). GSM-7 and IA5 are both counted in GSM septets (the
    SMSC sends IA5 to the handset as GSM-7); Latin-1 in its octets."""
    if scheme is _LATIN1:
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return None
    if scheme is _IA5 and not text.isascii():
        return None
    return septets_or_none(text)


def _pick(
    text: str, policy: Policy, default_coding: int, long: LongMode = "udh"
) -> tuple[str, _Scheme, bytes | None]:
    """The text to send, its scheme and, for a 7/8-bit scheme, its :func:`_measured` octets
    (None for UCS-2: encoded by the caller, which reports invalid Unicode)."""
    base = _BASES.get(default_coding)
    if base is None:
        raise TextEncodeError(f"default_coding must be 0, 1 or 3, got {default_coding}")
    if policy not in POLICIES:
        raise TextEncodeError(f"policy must be auto, ucs2 or transliterate, got {policy!r}")
    stream = _measured(text, base)
    if stream is not None:
        return text, base, stream
    if policy != "ucs2":
        plain = transliterate(text)
        if plain != text:
            stream = _measured(plain, base)
            if stream is not None:
                if policy == "auto":
                    wide = _encode_chars(text, _UCS2)
                    if _count(wide, _UCS2, 2, long) <= _count(stream, base, 1, long):
                        return text, _UCS2, None
                return plain, base, stream
    return text, _UCS2, None


def _count(stream: bytes, scheme: _Scheme, width: int, long: LongMode) -> int:
    """Parts ``stream`` (already encoded in ``scheme``) takes, as :func:`encode_message` cuts it."""
    if long == "payload" or len(stream) <= scheme.single * width:
        return 1
    limit = scheme.per_udh16 if long == "udh16" else scheme.per_udh8
    if width == 1 and 0x1B not in stream:
        return -(-len(stream) // limit)
    if width == 2 and not any(0xD8 <= b <= 0xDB for b in stream[::2]):
        return -(-len(stream) // (2 * limit))
    return len(_chunks("", scheme, stream, width, limit))


def _choose(text: str, policy: Policy, default_coding: int) -> tuple[str, _Scheme]:
    chosen, scheme, _ = _pick(text, policy, default_coding)
    return chosen, scheme


def _encode_chars(text: str, scheme: _Scheme) -> bytes:
    if scheme is _UCS2:
        try:
            return text.encode("utf-16-be")
        except UnicodeEncodeError as exc:  # a lone surrogate in a Python str
            raise TextEncodeError(f"text is not valid Unicode: {exc.reason}") from exc
    if scheme is _LATIN1:
        return text.encode("latin-1")
    if scheme is _IA5:
        return text.encode("ascii")
    return encode_septets(text)


def _chunks(
    text: str, scheme: _Scheme, stream: bytes, width: int, limit: int
) -> list[tuple[str, bytes]]:
    """Greedy split into chunks of at most ``limit`` units, cut only between characters.

    A cut is moved back by one unit when it would fall after an ESC (0x1B only ever starts an
    escape in our septets: no extension septet is 0x1B) or after a UTF-16 high surrogate. Each
    chunk comes with its slice of ``stream`` (cut between characters, it is the chunk's own
    encoding in the measuring units).
    """
    step = limit * width
    gsm = scheme is _GSM or scheme is _IA5
    astral = width == 2 and len(stream) != 2 * len(text)
    chunks: list[tuple[str, bytes]] = []
    pos = char = 0
    while True:
        end = min(pos + step, len(stream))
        if end < len(stream):
            if gsm and stream[end - 1] == 0x1B:
                end -= 1
            elif width == 2 and 0xD8 <= stream[end - 2] <= 0xDB:
                end -= 2
        piece = stream[pos:end]
        if gsm:
            n = len(piece) - piece.count(0x1B)
        elif astral:
            n = len(piece) // 2 - sum(
                1 for i in range(0, len(piece), 2) if 0xD8 <= piece[i] <= 0xDB
            )
        else:
            n = len(piece) // width
        chunks.append((text[char : char + n], piece))
        char += n
        pos = end
        if pos >= len(stream):
            return chunks


def sms_parts(text: str, *, policy: Policy = "ucs2") -> int:
    """How many parts ``text`` costs as the server sends it under ``policy`` (concatenated
    with a UDH, the SMSC's default alphabet GSM-7)."""
    return len(encode_message(text, policy=policy))


def encode_message(
    text: str,
    *,
    policy: Policy = "ucs2",
    long: LongMode = "udh",
    ref: int = 0,
    default_coding: int = DC_DEFAULT,
    packed: bool = False,
) -> list[Part]:
    """Encode ``text`` into the submit_sm parts that carry it.

    ``ref`` is the concatenation reference, taken modulo 256 for ``udh`` and 65536 otherwise.
    ``default_coding`` is the SMSC's preferred 7/8-bit alphabet (0 GSM-7, 1 IA5, 3 Latin-1);
    ``packed`` sends GSM-7 packed instead of one septet per octet. Raises :class:`TooManyParts`
    beyond 255 parts and :class:`TextEncodeError` for bad arguments or invalid Unicode.
    """
    chosen, scheme, measured = _pick(text, policy, default_coding, long)
    dc = scheme.data_coding
    pack = packed and scheme is _GSM
    ia5 = scheme is _IA5  # measured in septets, sent as ASCII: the only scheme that re-encodes

    def body(chunk: str, piece: bytes, udh: bytes = b"") -> bytes:
        raw = chunk.encode("ascii") if ia5 else piece
        if pack:
            return udh + pack_septets(raw, fill_bits_after_udh(len(udh)) if udh else 0)
        return udh + raw

    if long not in ("udh", "udh16", "sar", "payload"):
        raise TextEncodeError(f"long must be udh, udh16, sar or payload, got {long!r}")
    if measured is None:
        stream, width = _encode_chars(chosen, _UCS2), 2
    else:
        stream, width = measured, 1
    if long == "payload":
        total = -(-len(stream) // (scheme.per_udh8 * width))  # parts the SMSC will need, about
        if total > MAX_PARTS:
            raise TooManyParts(total)
        return [Part(b"", dc, 0, {"message_payload": body(chosen, stream)}, chosen)]
    if len(stream) <= scheme.single * width:
        return [Part(body(chosen, stream), dc, 0, {}, chosen)]

    limit = scheme.per_udh16 if long == "udh16" else scheme.per_udh8
    chunks = _chunks(chosen, scheme, stream, width, limit)
    total = len(chunks)
    if total > MAX_PARTS:
        raise TooManyParts(total)
    parts: list[Part] = []
    for seq, (chunk, piece) in enumerate(chunks, start=1):
        if long == "udh":
            udh = bytes((5, IEI_CONCAT_8, 3, ref & 0xFF, total, seq))
            parts.append(Part(body(chunk, piece, udh), dc, ESM_UDHI, {}, chunk))
        elif long == "udh16":
            r = ref & 0xFFFF
            udh = bytes((6, IEI_CONCAT_16, 4, r >> 8, r & 0xFF, total, seq))
            parts.append(Part(body(chunk, piece, udh), dc, ESM_UDHI, {}, chunk))
        else:
            tlvs = {
                "sar_msg_ref_num": ref & 0xFFFF,
                "sar_total_segments": total,
                "sar_segment_seqnum": seq,
            }
            parts.append(Part(body(chunk, piece), dc, 0, tlvs, chunk))
    return parts


def ussd_text(text: str, policy: Policy = "ucs2") -> str:
    """The screen as the handset will show it under ``policy`` (what an HTTP aggregator is given).

    ``ucs2`` keeps every letter; ``transliterate`` maps Polish letters when that makes it GSM-7;
    ``auto`` keeps them while the screen fits one UCS-2 USSD string (:data:`USSD_UCS2_CHARS`).
    """
    if policy == "auto":
        policy = "ucs2" if len(text) <= USSD_UCS2_CHARS else "transliterate"
    return _choose(text, policy, DC_DEFAULT)[0]


def encode_ussd(
    text: str, policy: Policy = "ucs2", *, max_chars: int = USSD_MAX_CHARS
) -> tuple[bytes, int]:
    """One USSD screen → (octets, data_coding); GSM-7 unpacked or UCS-2, never split.

    Raises :class:`UssdTooLong` past ``max_chars`` characters (counted after transliteration).
    """
    if policy == "auto":
        policy = "ucs2" if len(text) <= USSD_UCS2_CHARS else "transliterate"
    chosen, scheme = _choose(text, policy, DC_DEFAULT)
    if len(chosen) > max_chars:
        raise UssdTooLong(len(chosen))
    return _encode_chars(chosen, scheme), scheme.data_coding
