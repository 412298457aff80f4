"""The simulator's receipt text parses back; its body codec agrees with the text layer."""

from __future__ import annotations

import time

import pytest

from gateway.smpp.pdu import MessageState
from gateway.sms.decoding import split_short_message
from gateway.sms.receipts import parse_receipt
from simulator.faults import RECEIPT_STATES
from simulator.mt import body_codec
from simulator.receipts import receipt_text


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
    assert body_codec(data, data_coding) == expected
