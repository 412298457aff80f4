"""The byte-level fast paths (gateway.smpp.wire) equal the codec's bytes and readings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.smpp import wire
from gateway.smpp.codec import decode, encode
from gateway.smpp.fast import submit_sm_template
from gateway.smpp.pdu import MessageState, Pdu

ADDRESS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
OCTET = st.integers(0, 255)
MESSAGE_ID = st.text("0123456789abcdef", min_size=1, max_size=64)


@given(sequence=st.integers(0, 0xFFFFFFFF), message_id=MESSAGE_ID)
def test_submit_sm_resp_matches_the_codec(sequence: int, message_id: str) -> None:
    expected = encode(Pdu("submit_sm_resp", sequence, 0, {"message_id": message_id}))
    assert wire.submit_sm_resp(sequence, message_id) == expected


@pytest.mark.parametrize("message_id", ["x" * 65, "a\x00b", "zażółć"])
def test_submit_sm_resp_leaves_unusual_ids_to_the_codec(message_id: str) -> None:
    assert wire.submit_sm_resp(1, message_id) is None


@given(
    sequence=st.integers(1, 0x7FFFFFFF),
    source=ADDRESS,
    destination=ADDRESS,
    tons=st.tuples(OCTET, OCTET, OCTET, OCTET),
    text=st.binary(max_size=254),
    message_id=MESSAGE_ID,
    state=st.sampled_from(sorted(int(s) for s in MessageState)),
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
    body = wire.receipt_body(
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
    frame = wire.deliver_sm(sequence, body)
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
    assert wire.receipt_body(**fields) is None  # type: ignore[arg-type]


SUBMIT = st.fixed_dictionaries(
    {
        "source_addr": ADDRESS,
        "destination_addr": ADDRESS,
        "data_coding": st.sampled_from([0, 8]),
        "registered_delivery": st.integers(0, 1),
        "short_message": st.binary(max_size=254),
    }
)


@given(
    params=st.lists(SUBMIT, min_size=1, max_size=5),
    first=st.integers(1, 0x7FFFFF00),
    start=st.integers(0, 2),
)
def test_numbered_templates_equal_the_codec(
    params: list[dict[str, object]], first: int, start: int
) -> None:
    templates = [submit_sm_template(p) for p in params]
    start = min(start, len(templates) - 1)
    sequences = list(range(first, first + len(templates) - start))
    expected = b"".join(
        encode(Pdu("submit_sm", seq, 0, p))
        for seq, p in zip(sequences, params[start:], strict=True)
    )
    assert bytes(wire.numbered(templates, start, sequences)) == expected
    one = wire.numbered_one(templates[start], sequences[0])
    assert bytes(one) == encode(Pdu("submit_sm", sequences[0], 0, params[start]))


@given(sequence=st.integers(0, 0xFFFFFFFF), status=st.integers(0, 0xFF), message_id=MESSAGE_ID)
def test_plain_message_id_reads_what_the_codec_reads(
    sequence: int, status: int, message_id: str
) -> None:
    frame = b"junk" + encode(Pdu("submit_sm_resp", sequence, status, {"message_id": message_id}))
    assert wire.read_header(frame, 4)[1:] == (wire.SUBMIT_SM_RESP, status, sequence)
    assert wire.plain_message_id(frame, 4, len(frame)) == decode(frame[4:]).get("message_id")


def test_plain_message_id_of_an_empty_body_and_of_unusual_ones() -> None:
    bare = encode(Pdu("submit_sm_resp", 7, 0x58))
    assert wire.plain_message_id(bare[:16], 0, 16) == ""
    with_tlv = encode(
        Pdu("submit_sm_resp", 7, 0, {"message_id": "ab", "additional_status_info_text": "x"})
    )
    assert wire.plain_message_id(with_tlv, 0, len(with_tlv)) is None
    long_id = encode(Pdu("submit_sm_resp", 7, 0, {"message_id": "9" * 64}))
    assert wire.plain_message_id(long_id, 0, len(long_id)) == "9" * 64
    no_nul = long_id[:-1] + b"9"
    assert wire.plain_message_id(no_nul, 0, len(no_nul)) is None


@pytest.mark.parametrize(
    ("pdu", "submit", "bare_resp"),
    [
        (Pdu("submit_sm", 3, 0, {"short_message": b"x"}), True, False),
        (Pdu("deliver_sm_resp", 3, 0, {"message_id": ""}), False, True),
        (Pdu("deliver_sm_resp", 3, 0x14, {"message_id": ""}), False, True),
        (Pdu("deliver_sm_resp", 3, 0, {"message_id": "1"}), False, False),
        (Pdu("submit_sm_resp", 3, 0, {"message_id": ""}), False, False),
        (Pdu("deliver_sm", 3, 0, {"short_message": b""}), False, False),
    ],
)
def test_frame_recognisers_agree_with_the_codec(pdu: Pdu, submit: bool, bare_resp: bool) -> None:
    frame = encode(pdu)
    assert wire.is_submit_sm(frame) is submit
    assert wire.is_bare_deliver_sm_resp(frame) is bare_resp
    if bare_resp:
        assert decode(frame) == pdu
