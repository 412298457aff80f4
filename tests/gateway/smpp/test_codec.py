"""Codec unit tests from bytes: hand-written hex PDUs, framing, errors, the bind-state table."""

from __future__ import annotations

import pytest

from gateway.smpp import codec
from gateway.smpp.codec import BindState, Framer, SmppConnection
from gateway.smpp.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.smpp.pdu import Pdu, Status

# deliver_sm from an SMSC: *100# dialled, USSD op 1 (PSSR indication), its_session_info 0x1234,
# esm_class 0x43 (bit field, not an enum), plus an unknown vendor TLV 0x1400.
DELIVER_USSD = bytes.fromhex(
    "00000047"
    "00000005"
    "00000000"
    "00000005"
    "00"
    "01"
    "01"
    "343836303030303030303100"  # service_type, ton, npi, source_addr
    "00"
    "00"
    "2a31303023"
    "00"  # dest ton, npi, destination_addr "*100#"
    "43"
    "00"
    "00"
    "00"
    "00"
    "00"
    "00"
    "00"
    "00"  # esm_class .. sm_default_msg_id
    "05"
    "2a31303023"  # sm_length, short_message
    "0501"
    "0001"
    "01"  # ussd_service_op = 1
    "1383"
    "0002"
    "1234"  # its_session_info
    "1400"
    "0002"
    "6162"  # unknown TLV kept verbatim
)


def hexframe(command_id: int, body: bytes, *, sequence: int = 1, status: int = 0) -> bytes:
    return (
        (16 + len(body)).to_bytes(4, "big")
        + command_id.to_bytes(4, "big")
        + status.to_bytes(4, "big")
        + sequence.to_bytes(4, "big")
        + body
    )


def test_deliver_sm_with_ussd_service_op() -> None:
    pdu = codec.decode(DELIVER_USSD)
    assert pdu.command == "deliver_sm"
    assert pdu.sequence == 5
    assert pdu.params["source_addr"] == "48600000001"
    assert pdu.params["source_addr_ton"] == 1
    assert pdu.params["destination_addr"] == "*100#"
    assert pdu.params["esm_class"] == 0x43
    assert pdu.params["short_message"] == b"*100#"
    assert pdu.params["ussd_service_op"] == 1
    assert pdu.params["its_session_info"] == 0x1234
    assert pdu.extra_tlvs == ((0x1400, b"ab"),)
    again = codec.encode(pdu)
    assert codec.decode(again) == pdu
    assert len(again) == len(DELIVER_USSD)


def test_submit_sm_with_long_message_payload_not_capped() -> None:
    payload = bytes(range(256)) * 40  # 10240 octets, far past smpplib's nominal 260
    pdu = Pdu(
        "submit_sm",
        9,
        0,
        {
            "destination_addr": "48600000001",
            "message_payload": payload,
            "registered_delivery": 0x11,
        },
    )
    data = codec.encode(pdu)
    back = codec.decode(data)
    assert back.params["message_payload"] == payload
    assert back.params["short_message"] == b""
    assert back.params["registered_delivery"] == 0x11


def test_submit_sm_resp_from_hex() -> None:
    frame = hexframe(0x80000004, b"abc123\x00", sequence=10)
    pdu = codec.decode(frame)
    assert pdu == Pdu("submit_sm_resp", 10, 0, {"message_id": "abc123"})
    assert codec.encode(pdu) == frame


def test_error_response_without_body() -> None:
    frame = hexframe(0x80000004, b"", sequence=3, status=Status.ESME_RTHROTTLED)
    pdu = codec.decode(frame)
    assert pdu.status == Status.ESME_RTHROTTLED
    assert pdu.params["message_id"] == ""


@pytest.mark.parametrize(
    ("frame", "status"),
    [
        (hexframe(0x00000099, b""), Status.ESME_RINVCMDID),
        (hexframe(0x00000004, b"\x00\x01\x01" + b"4860000000"), Status.ESME_RINVCMDLEN),
        (hexframe(0x00000002, b"x" * 20 + b"\x00" + b"\x00" * 20), Status.ESME_RINVSYSID),
        (hexframe(0x80000004, b"abc"), Status.ESME_RINVCMDLEN),
        # submit_sm whose sm_length says 200 but 3 octets follow
        (
            hexframe(
                0x00000004,
                b"\x00" * 3 + b"\x00" * 3 + b"\x00" * 3 + b"\x00\x00" + b"\x00" * 4 + b"\xc8abc",
            ),
            Status.ESME_RINVMSGLEN,
        ),
        # enquire_link with a half TLV header
        (hexframe(0x00000015, b"\x05\x01"), Status.ESME_RINVOPTPARSTREAM),
        # TLV length running past the end
        (hexframe(0x00000015, b"\x05\x01\x00\x09\x01"), Status.ESME_RINVOPTPARSTREAM),
        # ussd_service_op with length 2
        (hexframe(0x00000015, b"\x05\x01\x00\x02\x01\x02"), Status.ESME_RINVPARLEN),
        # receipted_message_id without its NUL
        (hexframe(0x80000004, b"\x00" + b"\x00\x1e\x00\x02ab"), Status.ESME_RINVOPTPARAMVAL),
    ],
)
def test_malformed_frames_carry_the_status(frame: bytes, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        codec.decode(frame)
    assert info.value.status == status
    assert info.value.sequence == 1


def test_header_length_mismatch() -> None:
    frame = bytearray(hexframe(0x15, b""))
    frame[3] = 17
    with pytest.raises(RemoteProtocolError) as info:
        codec.decode(bytes(frame))
    assert info.value.status == Status.ESME_RINVCMDLEN


@pytest.mark.parametrize(
    "params",
    [
        {"source_addr": "1" * 21},
        {"destination_addr": "2" * 30},
        {"service_type": "TOOLONG"},
        {"short_message": b"x" * 255},
        {"short_message": b"x", "message_payload": b"y"},
        {"esm_class": 256},
        {"sar_msg_ref_num": 70000},
        {"no_such_field": 1},
        {"source_addr": "a\x00b"},
        {"receipted_message_id": "é"},
    ],
)
def test_encode_refuses_instead_of_truncating(params: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        codec.encode(Pdu("submit_sm", 1, 0, params))


def test_framer_every_split_offset() -> None:
    stream = DELIVER_USSD + hexframe(0x15, b"", sequence=6)
    for cut in range(len(stream) + 1):
        framer = Framer()
        frames = []
        for chunk in (stream[:cut], stream[cut:]):
            framer.feed(chunk)
            while (f := framer.next_frame()) is not None:
                frames.append(f)
        assert frames == [DELIVER_USSD, hexframe(0x15, b"", sequence=6)]
        assert framer.buffered == 0


def test_framer_truncated_waits() -> None:
    framer = Framer()
    framer.feed(DELIVER_USSD[:-1])
    assert framer.next_frame() is None
    assert framer.buffered == len(DELIVER_USSD) - 1


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_framer_bad_length_is_fatal(length: int) -> None:
    framer = Framer()
    framer.feed(length.to_bytes(4, "big") + b"\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x07")
    with pytest.raises(RemoteProtocolError) as info:
        framer.next_frame()
    assert info.value.fatal
    assert info.value.status == Status.ESME_RINVCMDLEN
    assert info.value.sequence == 7
    with pytest.raises(RemoteProtocolError):
        framer.next_frame()


def bound_pair() -> tuple[SmppConnection, SmppConnection]:
    esme, smsc = SmppConnection("esme"), SmppConnection("smsc")
    smsc.receive_data(
        esme.send(Pdu("bind_transceiver", params={"system_id": "idea24", "password": "idea24"}))
    )
    bind = smsc.next_event()
    assert isinstance(bind, Pdu)
    assert bind.params["system_id"] == "idea24"
    assert bind.sequence == 1
    esme.receive_data(smsc.send(bind.response(system_id="SMSC")))
    assert isinstance(esme.next_event(), Pdu)
    assert esme.state is smsc.state is BindState.BOUND_TRX
    return esme, smsc


def test_bind_submit_deliver_unbind() -> None:
    esme, smsc = bound_pair()
    smsc.receive_data(
        esme.send(
            Pdu("submit_sm", params={"destination_addr": "48600000001", "short_message": b"hi"})
        )
    )
    assert esme.last_sequence == 2
    sub = smsc.next_event()
    assert isinstance(sub, Pdu) and sub.command == "submit_sm" and sub.sequence == 2
    esme.receive_data(smsc.send(sub.response(message_id="1")))
    resp = esme.next_event()
    assert isinstance(resp, Pdu) and resp.params["message_id"] == "1" and resp.sequence == 2
    esme.receive_data(
        smsc.send(Pdu("deliver_sm", params={"short_message": b"*100#", "ussd_service_op": 1}))
    )
    dlv = esme.next_event()
    assert isinstance(dlv, Pdu) and dlv.params["ussd_service_op"] == 1
    smsc.receive_data(esme.send(Pdu("unbind")))
    assert isinstance(smsc.next_event(), Pdu)
    esme.receive_data(smsc.send(Pdu("unbind_resp", 3)))
    assert isinstance(esme.next_event(), Pdu)
    assert esme.state is smsc.state is BindState.UNBOUND


def test_request_in_wrong_state_is_an_error_event() -> None:
    smsc = SmppConnection("smsc")
    smsc.receive_data(codec.encode(Pdu("submit_sm", 4, 0, {"short_message": b"x"})))
    err = smsc.next_event()
    assert isinstance(err, ProtocolError)
    assert err.status == Status.ESME_RINVBNDSTS and err.sequence == 4
    nack = codec.decode(smsc.nack_for(err))
    assert nack == Pdu("submit_sm_resp", 4, Status.ESME_RINVBNDSTS, {"message_id": ""})
    assert smsc.state is BindState.OPEN


def test_bind_twice_is_already_bound() -> None:
    _esme, smsc = bound_pair()
    smsc.receive_data(codec.encode(Pdu("bind_transmitter", 9)))
    err = smsc.next_event()
    assert isinstance(err, ProtocolError) and err.status == Status.ESME_RALYBND


def test_esme_may_not_send_before_bind() -> None:
    with pytest.raises(LocalProtocolError):
        SmppConnection("esme").send(Pdu("submit_sm"))


def test_unknown_command_gets_generic_nack_and_stream_goes_on() -> None:
    _esme, smsc = bound_pair()
    smsc.receive_data(hexframe(0x77, b"junk", sequence=11) + hexframe(0x15, b"", sequence=12))
    err = smsc.next_event()
    assert isinstance(err, ProtocolError) and err.status == Status.ESME_RINVCMDID
    assert codec.decode(smsc.nack_for(err)) == Pdu("generic_nack", 11, Status.ESME_RINVCMDID)
    ok = smsc.next_event()
    assert isinstance(ok, Pdu) and ok.command == "enquire_link" and ok.sequence == 12


def test_fatal_length_closes() -> None:
    conn = SmppConnection("esme")
    conn.receive_data(b"\x00\x00\x00\x05" + b"\x00" * 12)
    err = conn.next_event()
    assert isinstance(err, ProtocolError) and err.fatal
    assert codec.decode(conn.nack_for(err)).command == "generic_nack"
    assert conn.state is BindState.CLOSED
    assert conn.next_event() is None


def test_cancel_replace_submit_multi_can_be_refused() -> None:
    _esme, smsc = bound_pair()
    multi_body = b"\x00\x01\x01123\x00\x02" + b"\x01\x01\x01456\x00" + b"\x02list\x00"
    smsc.receive_data(
        codec.encode(Pdu("cancel_sm", 20, 0, {"message_id": "abc"}))
        + codec.encode(Pdu("replace_sm", 21, 0, {"message_id": "abc", "short_message": b"x"}))
        + hexframe(0x21, multi_body, sequence=22)
    )
    for seq, cmd in ((20, "cancel_sm"), (21, "replace_sm"), (22, "submit_multi")):
        pdu = smsc.next_event()
        assert isinstance(pdu, Pdu) and pdu.command == cmd and pdu.sequence == seq
        answer = codec.decode(smsc.send(pdu.response(Status.ESME_RINVCMDID)))
        assert answer.command == cmd + "_resp" and answer.status == Status.ESME_RINVCMDID


def test_sequence_wraps() -> None:
    conn = SmppConnection("esme")
    conn._sequence = 0x7FFFFFFE
    assert conn.next_sequence() == 0x7FFFFFFF
    assert conn.next_sequence() == 1
