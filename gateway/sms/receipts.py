"""SMSC delivery receipts: parse them, write them, and match their message ids to ours.

A receipt is a deliver_sm with the receipt bit in esm_class. SMPP 3.4 Appendix B only suggests its
text (``id:… sub:… dlvrd:… submit date:YYMMDDhhmm done date:… stat:DELIVRD err:… text:…``), so
vendors vary: key case, ``submit_date``, 12-digit dates with seconds, missing fields, long state
words. The ``receipted_message_id`` and ``message_state`` TLVs are unambiguous and win when present.

Message ids
-----------
Some SMSCs (reported for Kannel set-ups and several vendors) answer submit_sm with a hex id and
then put the same number in decimal into the receipt, with leading zeros or other case. An id
made only of digits cannot say which base it is in, so one canonical string is not enough.
:func:`id_keys` gives every reading of an id, canonical form first:

* purely hex digits (``0-9a-f``, any case): the number read as hex, written as lowercase hex
  without leading zeros (``"00A1"`` → ``"a1"``, ``"0"`` → ``"0"``); if it is also purely
  decimal, the number read as decimal, in the same hex form, comes second;
* anything else (UUIDs, ids with letters beyond f): stripped and lowercased as it is.

:func:`normalise_id` is the first key; :func:`ids_match` says whether two ids can be the same
message. Storing every key in one map is not enough: decimal ``16`` is hex ``10``, so a pending
``"16"`` would answer a receipt for a pending ``"10"``. :class:`IdIndex` keeps the first keys of
pending ids apart from their other readings and prefers an exact match; an outbox on Redis keeps
the same two key spaces.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar

from backend.errors import Idea24Error
from gateway.smpp.pdu import ESM_UDHI, MessageState
from gateway.sms.decoding import decode_short_message
from gateway.sms.text import TextDecodeError

__all__ = [
    "IdIndex",
    "Receipt",
    "ReceiptError",
    "format_receipt",
    "id_keys",
    "ids_match",
    "normalise_id",
    "parse_receipt",
    "parse_receipt_date",
    "state_from_stat",
]


class ReceiptError(Idea24Error, ValueError):
    """A deliver_sm marked as a receipt carries no message id at all."""


_STATES: Mapping[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVRD": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "REJECTED": MessageState.REJECTED,
}

#: The seven-letter stat words of Appendix B, for writing receipts.
STAT_WORDS: Mapping[MessageState, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

#: message_state values → members: a dict look-up instead of an Enum call per receipt.
_STATE_BY_VALUE: Mapping[int, MessageState] = {state.value: state for state in MessageState}

#: States after which the SMSC sends nothing more for the message.
NON_FINAL = frozenset({MessageState.ENROUTE, MessageState.ACCEPTED})


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt. Dates are the SMSC's local time as written (no time zone)."""

    message_id: str
    state: MessageState
    error: str | None = None
    submitted_at: datetime | None = None
    done_at: datetime | None = None
    stat: str = ""  # the stat word as received, upper-cased ("" when only the TLV said)
    submitted: int | None = None  # sub:
    delivered: int | None = None  # dlvrd:
    text: str = ""

    @property
    def is_final(self) -> bool:
        return self.state not in NON_FINAL

    @property
    def is_delivered(self) -> bool:
        return self.state == MessageState.DELIVERED

    # The names docs/internals.md first used.
    @property
    def err(self) -> str | None:
        return self.error

    @property
    def submit_date(self) -> datetime | None:
        return self.submitted_at

    @property
    def done_date(self) -> datetime | None:
        return self.done_at


_KEY = re.compile(
    r"(?<![A-Za-z0-9_])(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:",
    re.IGNORECASE,
)


# The Appendix B form exactly as most SMSCs write it: read in one match before the general scan.
_CANONICAL = re.compile(
    r"id:(?P<id>\S+) sub:(?P<sub>\d+) dlvrd:(?P<dlvrd>\d+) submit date:(?P<submitdate>\d+)"
    r" done date:(?P<donedate>\d+) stat:(?P<stat>\w+) err:(?P<err>\w+)(?: text:(?P<text>.*))?",
    re.DOTALL,
)


#: What :func:`parse_receipt` reads from a text: id, sub, dlvrd, submit date, done date, stat,
#: err, text (None where the text has no such key).
_Read = tuple[
    str | None, str | None, str | None, str | None, str | None, str | None, str | None, str | None
]


def _read(text: str) -> _Read:
    """The receipt keys of ``text`` as a tuple: one regex match and no dict for the Appendix B
    form most SMSCs send, the general scan for the rest."""
    canonical = _CANONICAL.fullmatch(text)
    if canonical is not None:
        return canonical.groups()  # type: ignore[return-value]
    g = _fields_scan(text).get
    return (
        g("id"),
        g("sub"),
        g("dlvrd"),
        g("submitdate"),
        g("donedate"),
        g("stat"),
        g("err"),
        g("text"),
    )


def _fields_scan(text: str) -> dict[str, str]:
    """The general reader: any key order or case, missing keys, odd spacing."""
    found: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower().replace(" ", "").replace("_", "")
        if key == "text":
            if key not in found:
                found[key] = text[m.end() :]
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        found.setdefault(key, text[m.end() : end].strip())
    return found


def parse_receipt_date(value: str | None) -> datetime | None:
    """``YYMMDDhhmm``, ``YYMMDDhhmmss`` or ``YYYYMMDDhhmmss`` → datetime; anything else → None."""
    if not value:
        return None
    return _parse_date(value.strip())


@lru_cache(maxsize=1024)
def _parse_date(digits: str) -> datetime | None:
    """Cached: a busy link's receipts share a few minute stamps, and strptime costs ~10 µs."""
    fmt = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}.get(len(digits))
    if fmt is None or not digits.isdigit():
        return None
    try:
        return datetime.strptime(digits, fmt)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _stamp(moment: datetime, fmt: str) -> str:
    """Cached: receipts written in one minute share their stamps (strftime ~3 µs each)."""
    return moment.strftime(fmt)


def state_from_stat(stat: str) -> MessageState:
    """A stat word (``DELIVRD``, ``delivered``, ``2``…) → MessageState; unknown → UNKNOWN."""
    word = stat.strip().upper()
    if word.isdecimal():  # isdigit() also takes "²", which int() refuses
        return _STATE_BY_VALUE.get(int(word), MessageState.UNKNOWN)
    return _STATES.get(word, MessageState.UNKNOWN)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdecimal() else None  # not isdigit(): int("²") raises


def _as_str(value: Any) -> str:
    text: str
    if type(value) is str:
        text = value
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).decode("latin-1")
    else:
        text = str(value)
    return text.strip().rstrip("\x00").strip()


def _receipt_text(params: Mapping[str, Any]) -> str:
    data = params.get("message_payload") or params.get("short_message") or b""
    if isinstance(data, str):
        return data
    dc = int(params.get("data_coding", 0) or 0)
    udhi = bool(int(params.get("esm_class", 0) or 0) & ESM_UDHI)
    try:
        return decode_short_message(bytes(data), dc, udhi)[1]
    except TextDecodeError:
        return decode_short_message(bytes(data), dc, False)[1]


def parse_receipt(pdu_params: Mapping[str, Any], text: str | None = None) -> Receipt:
    """Read a receipt from a deliver_sm/data_sm's params (and its text, decoded if not given).

    TLVs win over the text: ``receipted_message_id`` for the id, ``message_state`` for the state.
    Raises :class:`ReceiptError` when neither carries an id.
    """
    get = pdu_params.get
    body = _receipt_text(pdu_params) if text is None else text
    text_id, sub, dlvrd, submit_date, done_date, stat, error, rest = _read(body)
    tlv_id = get("receipted_message_id")
    message_id = _as_str(tlv_id) if tlv_id not in (None, b"", "") else text_id
    if not message_id:
        raise ReceiptError(f"receipt without a message id: {body[:80]!r}")
    stat = stat.upper() if stat else ""
    tlv_state = get("message_state")
    state = _STATE_BY_VALUE.get(int(tlv_state)) if tlv_state is not None else None
    if state is None:  # no TLV, or a value SMPP does not define: the stat word decides
        state = state_from_stat(stat)
    if not error:
        error = None
        nec = get("network_error_code")
        if isinstance(nec, bytes | bytearray) and len(nec) == 3:
            error = f"{nec[0]}:{int.from_bytes(nec[1:], 'big'):03d}"  # network type : code
    return Receipt(
        message_id,
        state,
        error,
        _parse_date(submit_date.strip()) if submit_date else None,
        _parse_date(done_date.strip()) if done_date else None,
        stat,
        _int_or_none(sub),
        _int_or_none(dlvrd),
        rest or "",
    )


def format_receipt(
    message_id: str,
    state: MessageState,
    *,
    submitted_at: datetime,
    done_at: datetime,
    error: str = "000",
    text: str = "",
    submitted: int = 1,
    delivered: int | None = None,
    seconds: bool = False,
) -> str:
    """The Appendix B receipt text, as an SMSC writes it (``text`` cut to its first 20 chars)."""
    fmt = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"
    if delivered is None:
        delivered = submitted if state == MessageState.DELIVERED else 0
    return (
        f"id:{message_id} sub:{submitted:03d} dlvrd:{delivered:03d} "
        f"submit date:{_stamp(submitted_at, fmt)} done date:{_stamp(done_at, fmt)} "
        f"stat:{STAT_WORDS[state]} err:{error} text:{text[:20]}"
    )


_HEX_DIGITS = "0123456789abcdef"
_DECIMAL_DIGITS = "0123456789"
_MAX_NUMERIC = 64  # SMPP message_id is at most 64 characters; longer is not a number


def _is_number(s: str) -> bool:
    """Lowercase hex digits only, and short enough to be a number (see ``_MAX_NUMERIC``)."""
    return bool(s) and len(s) <= _MAX_NUMERIC and not s.strip(_HEX_DIGITS)


def id_keys(message_id: str) -> tuple[str, ...]:
    """Every canonical reading of an id, the primary first (see the module docstring)."""
    primary = normalise_id(message_id)
    # Decimal digits only (``primary`` is the id less its leading zeros: the same digits)
    if _is_number(primary) and not primary.strip(_DECIMAL_DIGITS):
        as_decimal = format(int(primary, 10), "x")
        if as_decimal != primary:
            return (primary, as_decimal)
    return (primary,)


def normalise_id(message_id: str) -> str:
    """The canonical form of a message id: lowercase hex without leading zeros when it is a number
    in hex or decimal digits (read as hex), else the id stripped and lowercased."""
    if type(message_id) is str and message_id.isalnum():  # nothing for _as_str to strip
        s = message_id.lower()
    else:
        s = _as_str(message_id).lower()
    return s.lstrip("0") or "0" if _is_number(s) else s


def ids_match(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` can name the same message (same number in hex or decimal)."""
    return not set(id_keys(a)).isdisjoint(id_keys(b))


T = TypeVar("T")


def _decimal_reader(key: str) -> str | None:
    """The first key of the pending id whose decimal reading is ``key`` (a first key or a decimal
    reading, both lowercase hex without leading zeros): the number written in decimal digits,
    read as hex. None when ``key`` is not a number or that id would be too long to be one."""
    if not _is_number(key):
        return None
    digits = str(int(key, 16))
    if len(digits) > _MAX_NUMERIC:
        return None
    return digits.lstrip("0") or "0"


class IdIndex(Generic[T]):
    """Pending messages by submit_sm_resp id, found again by a receipt's id (bounded, FIFO).

    Lookup order for a receipt id: its keys against the first keys of pending ids (same number,
    or the receipt in decimal for a hex submit id), then its keys against the other readings of
    pending ids (a decimal submit id, a hex receipt).

    Only first keys are stored: an id's other reading is its number written in decimal, so the
    pending id a receipt key is the other reading of can be computed from the key
    (:func:`_decimal_reader`) instead of looked up in a second map. A receipt that matches its
    message's first key — nearly all — costs one :func:`normalise_id` and one dict look-up.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._exact: OrderedDict[str, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._exact)

    def add(self, message_id: str, value: T) -> None:
        exact = self._exact
        primary = normalise_id(message_id)
        exact.pop(primary, None)  # a re-added id moves to the end (FIFO by last add)
        exact[primary] = value
        while len(exact) > self.max_entries:
            exact.popitem(last=False)

    def get(self, receipt_id: str) -> T | None:
        primary = self._find(receipt_id)
        return None if primary is None else self._exact[primary]

    def pop(self, receipt_id: str) -> T | None:
        primary = self._find(receipt_id)
        return None if primary is None else self._exact.pop(primary)

    def oldest(self) -> T | None:
        """The value added longest ago (FIFO by last add), None when empty: what ages out next."""
        exact = self._exact
        return exact[next(iter(exact))] if exact else None

    def pop_oldest(self) -> T:
        """Remove and return the value :meth:`oldest` names (KeyError when empty)."""
        return self._exact.popitem(last=False)[1]

    def _find(self, receipt_id: str) -> str | None:
        exact = self._exact
        if not exact:
            return None
        primary = normalise_id(receipt_id)
        if primary in exact:
            return primary
        # A miss: the receipt's decimal reading (a decimal receipt for a hex submit id), then the
        # pending ids whose decimal reading a key of the receipt is (a decimal submit id).
        keys = id_keys(receipt_id)
        for key in keys[1:]:
            if key in exact:
                return key
        for key in keys:
            candidate = _decimal_reader(key)
            if candidate is not None and candidate in exact:
                return candidate
        return None
