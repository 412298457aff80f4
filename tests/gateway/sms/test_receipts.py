"""Delivery receipts: vendor text forms, TLVs, dates, and message id matching."""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smpp.pdu import MessageState
from gateway.sms import receipts
from gateway.sms.receipts import (
    IdIndex,
    Receipt,
    ReceiptError,
    format_receipt,
    id_keys,
    ids_match,
    normalise_id,
    parse_receipt,
    parse_receipt_date,
    state_from_stat,
)

# Regression strings: each as some SMSC sends it (vendor named where the form is theirs).
VENDOR_RECEIPTS = [
    pytest.param(
        "id:1234567890 sub:001 dlvrd:001 submit date:1405121205 done date:1405121206 "
        "stat:DELIVRD err:000 text:Hello World",
        Receipt(
            "1234567890",
            MessageState.DELIVERED,
            "000",
            datetime(2014, 5, 12, 12, 5),
            datetime(2014, 5, 12, 12, 6),
            "DELIVRD",
            1,
            1,
            "Hello World",
        ),
        id="appendix-b",
    ),
    pytest.param(
        "ID:0A3F5B SUB:001 DLVRD:000 SUBMIT DATE:1103120000 DONE DATE:1103120001 "
        "STAT:UNDELIV ERR:001 TEXT:test",
        Receipt(
            "0A3F5B",
            MessageState.UNDELIVERABLE,
            "001",
            datetime(2011, 3, 12, 0, 0),
            datetime(2011, 3, 12, 0, 1),
            "UNDELIV",
            1,
            0,
            "test",
        ),
        id="upper-case-keys",
    ),
    pytest.param(
        "id:2233445566 sub:001 dlvrd:000 submit date:160520114023 done date:160520114530 "
        "stat:EXPIRED err:000 text:",
        Receipt(
            "2233445566",
            MessageState.EXPIRED,
            "000",
            datetime(2016, 5, 20, 11, 40, 23),
            datetime(2016, 5, 20, 11, 45, 30),
            "EXPIRED",
            1,
            0,
            "",
        ),
        id="12-digit-dates",
    ),
    pytest.param(
        # Jasmin's receipt has no sub/dlvrd/text and a UUID id.
        "id:b6d8b4c2-9ea0-4c3e-8ae4-9e1e9f0a6f2c submit date:1901011200 "
        "done date:1901011201 stat:DELIVRD err:000",
        Receipt(
            "b6d8b4c2-9ea0-4c3e-8ae4-9e1e9f0a6f2c",
            MessageState.DELIVERED,
            "000",
            datetime(2019, 1, 1, 12, 0),
            datetime(2019, 1, 1, 12, 1),
            "DELIVRD",
        ),
        id="jasmin-uuid",
    ),
    pytest.param(
        "id:123 sub:1 dlvrd:1 submit_date:1101011200 done_date:1101011200 stat:delivered "
        "err:0 Text:x",
        Receipt(
            "123",
            MessageState.DELIVERED,
            "0",
            datetime(2011, 1, 1, 12, 0),
            datetime(2011, 1, 1, 12, 0),
            "DELIVERED",
            1,
            1,
            "x",
        ),
        id="underscores-long-state-word",
    ),
    pytest.param(
        "id: 0000456  stat: REJECTD  err: 0x0B",
        Receipt("0000456", MessageState.REJECTED, "0x0B", stat="REJECTD"),
        id="sparse-spaced",
    ),
    pytest.param(
        "id:77 sub:001 dlvrd:001 submit date:2402301200 done date:garbage stat:ACCEPTD "
        "err:000 text:your id:99 stat:DELIVRD",
        Receipt(
            "77",
            MessageState.ACCEPTED,
            "000",
            None,
            None,
            "ACCEPTD",
            1,
            1,
            "your id:99 stat:DELIVRD",
        ),
        id="bad-dates-and-keys-inside-text",
    ),
    pytest.param(
        "id:5 stat:WHATEVER",
        Receipt("5", MessageState.UNKNOWN, None, stat="WHATEVER"),
        id="unknown-stat",
    ),
]


@pytest.mark.parametrize(("text", "expected"), VENDOR_RECEIPTS)
def test_vendor_receipt_text(text: str, expected: Receipt) -> None:
    assert parse_receipt({}, text) == expected


def test_text_is_decoded_from_short_message() -> None:
    text = (
        "id:42 sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000"
    )
    got = parse_receipt({"short_message": text.encode(), "data_coding": 0, "esm_class": 0x04})
    assert (got.message_id, got.state) == ("42", MessageState.DELIVERED)
    got = parse_receipt({"message_payload": text.encode("utf-16-be"), "data_coding": 8})
    assert got.message_id == "42"


def test_tlvs_win_over_text() -> None:
    params = {
        "receipted_message_id": "5C1B6DAF",
        "message_state": int(MessageState.UNDELIVERABLE),
        "short_message": b"id:1545301423 stat:DELIVRD err:000",
    }
    got = parse_receipt(params)
    assert got.message_id == "5C1B6DAF"
    assert got.state == MessageState.UNDELIVERABLE
    assert got.stat == "DELIVRD"
    assert ids_match(got.message_id, "1545301423")


def test_tlv_only_receipt_with_network_error_code() -> None:
    got = parse_receipt(
        {
            "receipted_message_id": b"abc\x00",
            "message_state": 5,
            "network_error_code": b"\x03\x00\x0b",
            "short_message": b"",
        }
    )
    assert got == Receipt("abc", MessageState.UNDELIVERABLE, "3:011")
    assert got.is_final and not got.is_delivered
    assert got.err == "3:011" and got.submit_date is None and got.done_date is None


def test_invalid_tlv_state_falls_back_to_text() -> None:
    assert parse_receipt({"message_state": 0}, "id:1 stat:EXPIRED").state == MessageState.EXPIRED


def test_no_id_raises_receipt_error() -> None:
    with pytest.raises(ReceiptError):
        parse_receipt({}, "stat:DELIVRD err:000")
    with pytest.raises(ReceiptError):
        parse_receipt({"short_message": b""})


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_receipt_error(text: str) -> None:
    try:
        got = parse_receipt({}, text)
    except ReceiptError:
        return
    assert got.message_id


def test_states() -> None:
    assert state_from_stat("DELIVRD") is MessageState.DELIVERED
    assert state_from_stat("undeliv") is MessageState.UNDELIVERABLE
    assert state_from_stat("2") is MessageState.DELIVERED
    assert state_from_stat("9") is MessageState.UNKNOWN
    assert state_from_stat("ENROUTE") is MessageState.ENROUTE
    assert not Receipt("1", MessageState.ENROUTE).is_final
    assert not Receipt("1", MessageState.ACCEPTED).is_final


def test_dates() -> None:
    assert parse_receipt_date("2501311259") == datetime(2025, 1, 31, 12, 59)
    assert parse_receipt_date("250131125959") == datetime(2025, 1, 31, 12, 59, 59)
    assert parse_receipt_date("20250131125959") == datetime(2025, 1, 31, 12, 59, 59)
    assert parse_receipt_date("2513311259") is None  # month 13
    assert parse_receipt_date("25013112") is None
    assert parse_receipt_date(None) is None


@pytest.mark.parametrize("state", list(MessageState))
def test_format_then_parse_round_trip(state: MessageState) -> None:
    sub, done = datetime(2025, 3, 1, 10, 0, 5), datetime(2025, 3, 1, 10, 1, 7)
    text = format_receipt(
        "0af", state, submitted_at=sub, done_at=done, text="Twoje hasło tymczasowe to 1234"
    )
    got = parse_receipt({}, text)
    assert got.message_id == "0af"
    assert got.state == state
    assert got.submitted_at == sub.replace(second=0)
    assert got.delivered == (1 if state == MessageState.DELIVERED else 0)
    assert got.text == "Twoje hasło tymczaso"  # the first 20 characters
    with_seconds = parse_receipt(
        {}, format_receipt("1", state, submitted_at=sub, done_at=done, seconds=True)
    )
    assert with_seconds.done_at == done


def test_format_matches_appendix_b_layout() -> None:
    t = datetime(2014, 5, 12, 12, 5)
    assert format_receipt("42", MessageState.DELIVERED, submitted_at=t, done_at=t, text="Hi") == (
        "id:42 sub:001 dlvrd:001 submit date:1405121205 done date:1405121205 "
        "stat:DELIVRD err:000 text:Hi"
    )


# -- message ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("5C1B6DAF", "1545301423"),  # hex in submit_sm_resp, decimal in the receipt
        ("1545301423", "5c1b6daf"),  # and the other way round
        ("000ABC", "abc"),  # leading zeros and case
        ("0012", "12"),
        ("12345678", "305419896"),  # an all-digit hex id vs its decimal
        ("B6D8B4C2-9EA0-4C3E-8AE4-9E1E9F0A6F2C", "b6d8b4c2-9ea0-4c3e-8ae4-9e1e9f0a6f2c"),
        ("0", "000"),
        (" 42\x00", "42"),
    ],
)
def test_ids_that_match(a: str, b: str) -> None:
    assert ids_match(a, b)
    assert ids_match(b, a)


@pytest.mark.parametrize(("a", "b"), [("5C1B6DAF", "1545301424"), ("abc", "abd"), ("x1", "1")])
def test_ids_that_do_not_match(a: str, b: str) -> None:
    assert not ids_match(a, b)


def test_normalise_id_rule() -> None:
    assert normalise_id("000ABC") == "abc"
    assert normalise_id("0123") == "123"  # digits are read as hex first
    assert normalise_id("0000") == "0"
    assert normalise_id("Msg-ID_7") == "msg-id_7"
    assert id_keys("1545301423") == ("1545301423", "5c1b6daf")
    assert id_keys("5C1B6DAF") == ("5c1b6daf",)
    assert id_keys("9") == ("9",)  # one reading when both bases agree


def test_index_prefers_the_exact_id_over_a_cross_base_reading() -> None:
    # Decimal 16 is hex 10: with both pending, each receipt finds its own message.
    index: IdIndex[str] = IdIndex()
    index.add("16", "sixteen")
    index.add("10", "ten")
    assert index.get("10") == "ten"
    assert index.get("0016") == "sixteen"
    assert index.pop("10") == "ten"
    assert index.pop("10") == "sixteen"  # now only the cross-base reading is left
    assert len(index) == 0


def test_index_matches_hex_submit_ids_to_decimal_receipts_and_back() -> None:
    index: IdIndex[int] = IdIndex()
    index.add("5C1B6DAF", 1)
    index.add("1545301424", 2)  # decimal submit id
    assert index.pop("1545301423") == 1
    assert index.pop("5c1b6db0") == 2
    assert index.pop("5c1b6daf") is None
    assert len(index) == 0


def test_index_is_bounded() -> None:
    index: IdIndex[int] = IdIndex(max_entries=3)
    for i in range(10):
        index.add(str(i), i)
    assert len(index) == 3
    assert index.get("0") is None
    assert index.get("9") == 9
    assert len(index._exact) == 3  # the only map it keeps: bounded too


@given(st.integers(0, 2**63))
def test_any_number_matches_across_bases(n: int) -> None:
    assert ids_match(format(n, "X"), str(n))
    assert ids_match("000" + format(n, "x"), format(n, "X"))


@given(
    message_id=st.text("0123456789abcdefABCDEF-", min_size=1, max_size=20),
    state=st.sampled_from(list(receipts.STAT_WORDS)),
    body=st.text(max_size=30),
    seconds=st.booleans(),
)
def test_canonical_fast_read_agrees_with_the_general_scan(
    message_id: str, state: MessageState, body: str, seconds: bool
) -> None:
    moment = datetime(2026, 11, 26, 3, 7, 9)
    written = receipts.format_receipt(
        message_id, state, submitted_at=moment, done_at=moment, text=body, seconds=seconds
    )
    assert receipts._read(written) == _scanned(written)
    assert receipts._read(written + "\\x00junk") == _scanned(written + "\\x00junk")


def _scanned(text: str) -> tuple[str | None, ...]:
    """What the general scan reads, in ``_read``'s order (None: key absent)."""
    found = receipts._fields_scan(text)
    keys = ("id", "sub", "dlvrd", "submitdate", "donedate", "stat", "err", "text")
    return tuple(found.get(k) for k in keys)


def test_superscript_digits_are_not_numbers() -> None:
    # "²".isdigit() is True but int("²") raises: such a receipt is read, not a crash.
    r = parse_receipt({}, "id:77 sub:² dlvrd:001 stat:³ err:000")
    assert (r.message_id, r.submitted, r.delivered, r.state) == (
        "77",
        None,
        1,
        MessageState.UNKNOWN,
    )
    assert state_from_stat("²") == MessageState.UNKNOWN
    assert state_from_stat("2") == MessageState.DELIVERED
    assert state_from_stat("9") == MessageState.UNKNOWN


def test_tlvs_with_the_text_keep_every_text_field() -> None:
    text = (
        "id:0A1B sub:001 dlvrd:001 submit date:2611252210 done date:2611252211 "
        "stat:UNDELIV err:034 text:Hej"
    )
    r = parse_receipt({"receipted_message_id": "0a1b\x00", "message_state": 2}, text)
    assert r == Receipt(
        "0a1b",
        MessageState.DELIVERED,  # the TLV wins over stat:
        "034",
        datetime(2026, 11, 25, 22, 10),
        datetime(2026, 11, 25, 22, 11),
        "UNDELIV",
        1,
        1,
        "Hej",
    )
    # An undefined message_state value leaves the stat word to decide.
    assert parse_receipt({"message_state": 99}, text).state == MessageState.UNDELIVERABLE


# -- message ids: the index against the two-map index it replaced ------------------------------

_ref_hex = re.compile(r"[0-9a-f]+")


def _reference_id_keys(message_id: str) -> tuple[str, ...]:
    s = str(message_id).strip().rstrip("\x00").strip().lower()
    if not s or len(s) > 64 or not _ref_hex.fullmatch(s):
        return (s,)
    keys = [format(int(s, 16), "x")]
    if s.isdigit():
        as_decimal = format(int(s, 10), "x")
        if as_decimal != keys[0]:
            keys.append(as_decimal)
    return tuple(keys)


class _ReferenceIndex:
    """The IdIndex that stored every other reading in a second map."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._exact: OrderedDict[str, tuple[tuple[str, ...], int]] = OrderedDict()
        self._alt: dict[str, str] = {}

    def add(self, message_id: str, value: int) -> None:
        keys = _reference_id_keys(message_id)
        self._discard(keys[0])
        self._exact[keys[0]] = (keys, value)
        for alt in keys[1:]:
            self._alt[alt] = keys[0]
        while len(self._exact) > self.max_entries:
            self._discard(next(iter(self._exact)))

    def pop(self, receipt_id: str, remove: bool) -> int | None:
        keys = _reference_id_keys(receipt_id)
        primary = next((k for k in keys if k in self._exact), None)
        if primary is None:
            primary = next((self._alt[k] for k in keys if self._alt.get(k) in self._exact), None)
        if primary is None:
            return None
        value = self._exact[primary][1]
        if remove:
            self._discard(primary)
        return value

    def _discard(self, primary: str) -> None:
        entry = self._exact.pop(primary, None)
        if entry is not None:
            for alt in entry[0][1:]:
                if self._alt.get(alt) == primary:
                    del self._alt[alt]


_ids = st.one_of(
    st.integers(0, 300).map(str),  # decimal readings that collide with hex ones
    st.integers(0, 300).map(lambda n: format(n, "X")),
    st.integers(0, 300).map(lambda n: "00" + format(n, "x")),
    st.integers(0, 2**70).map(str),
    st.text("0123456789", min_size=60, max_size=70),  # around the 64-character limit
    st.text("0123456789abcdefABCDEFxz- \x00", max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "get", "pop"]), _ids),
        max_size=40,
    ),
    st.integers(1, 6),
)
def test_index_finds_what_the_two_map_index_found(
    ops: list[tuple[str, str]], max_entries: int
) -> None:
    index: IdIndex[int] = IdIndex(max_entries)
    reference = _ReferenceIndex(max_entries)
    for n, (op, message_id) in enumerate(ops):
        if op == "add":
            index.add(message_id, n)
            reference.add(message_id, n)
        elif op == "get":
            assert index.get(message_id) == reference.pop(message_id, remove=False)
        else:
            assert index.pop(message_id) == reference.pop(message_id, remove=True)
        assert len(index) == len(reference._exact)


@given(st.one_of(_ids, st.text(max_size=70)))
def test_id_keys_agree_with_the_regex_definition(message_id: str) -> None:
    assert id_keys(message_id) == _reference_id_keys(message_id)
    assert normalise_id(message_id) == _reference_id_keys(message_id)[0]


def test_index_oldest_is_first_added_and_a_re_add_moves_it_last() -> None:
    index: IdIndex[int] = IdIndex()
    assert index.oldest() is None
    index.add("a", 1)
    index.add("b", 2)
    index.add("A", 3)  # the same id again: now the newest
    assert index.oldest() == 2
    assert index.pop_oldest() == 2
    assert index.oldest() == 3
    assert index.pop_oldest() == 3
    assert len(index) == 0 and index.oldest() is None
    with pytest.raises(KeyError):
        index.pop_oldest()
