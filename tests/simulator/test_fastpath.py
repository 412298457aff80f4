"""The simulator's pre-packed PDUs equal the codec's bytes; its receipt text parses back."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp.codec import decode, encode
from gateway.smpp.pdu import MessageState, Pdu
from gateway.sms.receipts import parse_receipt
from gateway.sms.text import split_short_message
from simulator import fastpath
from simulator.faults import RECEIPT_STATES
from simulator.smsc import receipt_text

ADDRESS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
OCTET = st.integers(0, 255)
MESSAGE_ID = st.text("0123456789abcdef", min_size=1, max_size=64)


@given(sequence=st.integers(0, 0xFFFFFFFF), message_id=MESSAGE_ID)
def test_submit_sm_resp_matches_the_codec(sequence: int, message_id: str) -> None:
    expected = encode(Pdu("submit_sm_resp", sequence, 0, {"message_id": message_id}))
    assert fastpath.submit_sm_resp(sequence, message_id) == expected


@pytest.mark.parametrize("message_id", ["x" * 65, "a\x00b", "zażółć"])
def test_submit_sm_resp_leaves_unusual_ids_to_the_codec(message_id: str) -> None:
    assert fastpath.submit_sm_resp(1, message_id) is None


@given(
    sequence=st.integers(1, 0x7FFFFFFF),
    source=ADDRESS,
    destination=ADDRESS,
    tons=st.tuples(OCTET, OCTET, OCTET, OCTET),
    text=st.binary(max_size=254),
    message_id=MESSAGE_ID,
    state=st.sampled_from(sorted(RECEIPT_STATES.values())),
)
def test_receipt_deliver_sm_matches_the_codec(
    sequence: int,
    source: str,
    destination: str,
    tons: tuple[int, int, int, int],
    text: bytes,
    message_id: str,
    state: int,
) -> None:
    body = fastpath.receipt_body(
        source_ton=tons[0],
        source_npi=tons[1],
        source=source,
        dest_ton=tons[2],
        dest_npi=tons[3],
        destination=destination,
        text=text,
        message_id=message_id,
        message_state=state,
    )
    assert body is not None
    params = {
        "service_type": "",
        "source_addr_ton": tons[0],
        "source_addr_npi": tons[1],
        "source_addr": source,
        "dest_addr_ton": tons[2],
        "dest_addr_npi": tons[3],
        "destination_addr": destination,
        "esm_class": 0x04,
        "data_coding": 0,
        "short_message": text,
        "receipted_message_id": message_id,
        "message_state": state,
    }
    frame = fastpath.deliver_sm(sequence, body)
    assert frame == encode(Pdu("deliver_sm", sequence, 0, params))
    decoded = decode(frame)
    assert decoded.get("receipted_message_id") == message_id
    assert decoded.get("short_message") == text


@pytest.mark.parametrize(
    "change",
    [{"source": "4" * 21}, {"destination": "a\x00"}, {"text": b"x" * 255}, {"message_state": 256}],
)
def test_receipt_body_leaves_unusual_fields_to_the_codec(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "source_ton": 1,
        "source_npi": 1,
        "source": "48600000001",
        "dest_ton": 5,
        "dest_npi": 0,
        "destination": "2424",
        "text": b"id:1 stat:DELIVRD",
        "message_id": "1",
        "message_state": 2,
        **change,
    }
    assert fastpath.receipt_body(**fields) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("state", sorted(RECEIPT_STATES))
def test_receipt_text_round_trips_through_the_parser(state: str) -> None:
    submitted = time.mktime((2026, 3, 9, 14, 5, 30, 0, 0, -1))
    text = receipt_text("3a9f0c", state, submitted, submitted + 60, "Twoje saldo: 12,50 zl. Dzięki")
    receipt = parse_receipt({"short_message": text.encode("ascii", "replace")})
    assert receipt.message_id == "3a9f0c"
    assert receipt.state == MessageState(RECEIPT_STATES[state])
    assert receipt.stat == state
    assert receipt.error == ("000" if state == "DELIVRD" else "001")
    assert (receipt.submitted, receipt.delivered) == (1, 1 if state == "DELIVRD" else 0)
    assert receipt.submitted_at is not None and receipt.done_at is not None
    assert receipt.submitted_at.strftime("%y%m%d%H%M") == "2603091405"
    assert receipt.done_at.strftime("%y%m%d%H%M") == "2603091406"
    assert receipt.text == "Twoje saldo: 12,50 z"
    assert text.startswith("id:3a9f0c sub:001 dlvrd:")


@pytest.mark.parametrize(
    ("data", "data_coding"),
    [
        (b"Saldo 12,50", 0),
        ("Zażółć gęślą jaźń".encode("utf-16-be"), 8),
        (b"caf\xe9", 0),  # octets above 0x7F in a "GSM" body: Latin-1
        (b"\x00\x02\x1b\x3c", 0),  # GSM-7 (@, $, an escape), not ASCII
        (b"Caf\xe9", 3),
        (b"plain", 1),
    ],
)
def test_body_codec_agrees_with_the_text_layer(data: bytes, data_coding: int) -> None:
    expected = split_short_message(data, data_coding, False).codec
    assert fastpath.body_codec(data, data_coding) == expected
