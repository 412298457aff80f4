"""Hex PDUs from real SMSCs and from smpplib (an independent packer), kept as regressions.

Each file in ``captures/`` is one PDU in hex after a ``#`` line naming where it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.smpp import codec, fast, reference
from gateway.smpp.pdu import ESM_UDHI, Pdu, Status

CAPTURES = Path(__file__).parent / "captures"

EXPECTED: dict[str, dict[str, Any]] = {
    "deliver_sm_receipt_payload": {
        "source_addr_ton": 1,
        "source_addr": "31600000000",
        "dest_addr_ton": 5,
        "destination_addr": "XXX YYYY",
        "esm_class": 0x04,
        "short_message": b"",
        "source_network_type": 1,
        "dest_network_type": 1,
        "receipted_message_id": "1d305b4c",
        "message_state": 2,
        "more_messages_to_send": 1,
    },
    "deliver_sm_receipt_vendor_tlvs": {
        "source_addr": "22549909028",
        "destination_addr": "",
        "esm_class": 0x04,
    },
    "bind_transceiver_smpplib": {
        "system_id": "idea24",
        "password": "idea24",
        "system_type": "VMA",
        "interface_version": 0x34,
        "addr_ton": 1,
        "addr_npi": 1,
        "address_range": "^48",
    },
    "submit_sm_udh_ucs2_smpplib": {
        "source_addr_ton": 5,
        "source_addr": "IDEA24",
        "destination_addr": "48600000001",
        "esm_class": ESM_UDHI,
        "registered_delivery": 0x11,
        "data_coding": 8,
        "sar_msg_ref_num": 42,
    },
}


def load(name: str) -> bytes:
    lines = (CAPTURES / f"{name}.hex").read_text().splitlines()
    return bytes.fromhex("".join(line for line in lines if not line.startswith("#")))


def test_every_capture_has_expectations() -> None:
    assert sorted(p.stem for p in CAPTURES.glob("*.hex")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_decodes(name: str) -> None:
    frame = load(name)
    pdu = codec.decode(frame)
    for key, value in EXPECTED[name].items():
        assert pdu.params[key] == value, key
    assert reference.decode(frame) == pdu
    again = codec.encode(pdu)
    assert len(again) == len(frame)
    assert codec.decode(again) == pdu
    if pdu.command in fast.DECODERS:
        assert fast.DECODERS[pdu.command](frame) == pdu


def test_receipt_payload_is_whole() -> None:
    pdu = codec.decode(load("deliver_sm_receipt_payload"))
    payload = pdu.params["message_payload"]
    assert payload.startswith(b"id:0489708364 sub:001 dlvrd:001")
    assert payload.endswith(b"text:" + "Привет".encode("utf-16-be"))


def test_vendor_tlvs_are_kept_in_order() -> None:
    frame = load("deliver_sm_receipt_vendor_tlvs")
    pdu = codec.decode(frame)
    assert pdu.sequence == 0x2F70C69A
    assert pdu.extra_tlvs == ((0x1403, b"(null)\x00"), (0x1402, b"612\x00"))
    assert pdu.params["short_message"].startswith(b"id:795920026 sub:001")
    assert codec.encode(pdu) == frame  # no known TLVs, so even the order is the same


def test_smpplib_packed_pdus_reencode_byte_for_byte() -> None:
    for name in ("bind_transceiver_smpplib", "submit_sm_udh_ucs2_smpplib"):
        frame = load(name)
        assert codec.encode(codec.decode(frame)) == frame


def test_submit_sm_capture_keeps_udh_and_sequence() -> None:
    pdu = codec.decode(load("submit_sm_udh_ucs2_smpplib"))
    assert pdu.sequence == 0x7FFFFFFF
    sm = pdu.params["short_message"]
    assert sm[:6] == bytes.fromhex("0500032a0201")
    assert sm[6:].decode("utf-16-be") == "Zażółć gęślą jaźń"
    resp = codec.decode(codec.encode(pdu.response(Status.ESME_ROK, message_id="ab12")))
    assert resp == Pdu("submit_sm_resp", 0x7FFFFFFF, 0, {"message_id": "ab12"})
