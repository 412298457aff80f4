"""Property tests of the codec (hypothesis).

- round trip: encode -> decode gives the same Pdu for every command, with known, unknown and
  odd TLVs;
- chunking: any split of a stream of PDUs gives back the same frames;
- garbage: random bytes never raise out of Framer / SmppConnection, and a frame with a valid
  header and a random body only ever raises RemoteProtocolError;
- differential: the hand-written fast path (gateway.smpp.fast) produces and accepts exactly what the
  smpplib path does, for every field combination, valid or not, and pure smpplib (no wrapper)
  packs the same bytes and parses the same values.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from smpplib import smpp as sm_smpp

from gateway.smpp import codec, fast, reference
from gateway.smpp.codec import Framer, SmppConnection
from gateway.smpp.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gateway.smpp.pdu import COMMAND_IDS, COMMAND_NAMES, HEADER, Pdu
from gateway.smpp.schema import LAYOUTS, TLVS, TLVS_BY_TAG, Field, TlvType, default_for

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOT = sorted(fast.ENCODERS)
LATIN1 = st.characters(min_codepoint=1, max_codepoint=255)
ASCII = st.characters(min_codepoint=1, max_codepoint=127)


def field_value(f: Field) -> st.SearchStrategy[Any]:
    if f.kind == "c":
        return st.text(LATIN1, max_size=f.max - 1)
    if f.kind == "i":
        return st.integers(0, 255)
    if f.kind == "sm":
        return st.binary(max_size=f.max)
    return st.binary(max_size=300)


def tlv_value(t: TlvType) -> st.SearchStrategy[Any]:
    if t.kind == "int":
        return st.integers(0, (1 << (8 * t.size)) - 1)
    if t.kind == "cstr":
        return st.text(ASCII, min_size=1, max_size=t.max - 1)
    if t.kind == "ostr":
        return st.binary(min_size=max(t.min, 1), max_size=min(t.max, 400))
    return st.just(True)


UNKNOWN_TAGS = st.integers(0, 0xFFFF).filter(lambda tag: tag not in TLVS_BY_TAG)
EXTRA = st.lists(st.tuples(UNKNOWN_TAGS, st.binary(max_size=40)), max_size=3).map(tuple)


@st.composite
def pdus(draw: st.DrawFn, commands: list[str] | None = None) -> Pdu:
    """A valid Pdu: every mandatory field, any known TLVs, unknown ones."""
    cmd = draw(st.sampled_from(commands or sorted(LAYOUTS)))
    layout = LAYOUTS[cmd]
    params: dict[str, Any] = {f.name: draw(field_value(f)) for f in layout}
    if cmd == "query_sm":  # smpplib refuses a query_sm without message_id, so do we
        params["message_id"] = draw(st.text(LATIN1, min_size=1, max_size=64))
    raw = any(f.kind == "raw" for f in layout)
    extra: tuple[tuple[int, bytes], ...] = ()
    if not raw:
        names = draw(st.lists(st.sampled_from(sorted(TLVS)), max_size=4, unique=True))
        for name in names:
            if name not in params:
                params[name] = draw(tlv_value(TLVS[name]))
        if params.get("short_message") and params.get("message_payload"):
            del params["message_payload"]
        extra = draw(EXTRA)
    return Pdu(
        cmd,
        draw(st.integers(0, 0x7FFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        params,
        extra,
    )


def normalised(pdu: Pdu) -> Pdu:
    params = {f.name: default_for(f) for f in LAYOUTS[pdu.command]}
    params.update(pdu.params)
    return Pdu(pdu.command, pdu.sequence, pdu.status, params, pdu.extra_tlvs)


@PROPS
@given(pdus())
def test_round_trip_every_command(pdu: Pdu) -> None:
    data = codec.encode(pdu)
    assert int.from_bytes(data[:4], "big") == len(data)
    assert codec.decode(data) == normalised(pdu)


@PROPS
@given(pdus(["deliver_sm", "submit_sm"]), st.binary(min_size=261, max_size=20000))
def test_message_payload_round_trips_uncapped(pdu: Pdu, payload: bytes) -> None:
    params = dict(pdu.params, short_message=b"", message_payload=payload)
    pdu = Pdu(pdu.command, pdu.sequence, pdu.status, params, pdu.extra_tlvs)
    assert codec.decode(codec.encode(pdu)).params["message_payload"] == payload


@PROPS
@given(st.lists(pdus(), min_size=1, max_size=6), st.lists(st.integers(0, 3000), max_size=12))
def test_any_chunking_gives_the_same_frames(batch: list[Pdu], cuts: list[int]) -> None:
    frames = [codec.encode(p) for p in batch]
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    framer = Framer()
    got: list[bytes] = []
    start = 0
    for end in [*points, len(stream)]:
        framer.feed(stream[start:end])
        start = end
        while (frame := framer.next_frame()) is not None:
            got.append(frame)
    assert got == frames
    assert [codec.decode(f) for f in got] == [normalised(p) for p in batch]


@PROPS
@given(
    st.sampled_from(["esme", "smsc"]),
    st.lists(st.binary(max_size=200), max_size=10),
)
def test_garbage_never_raises_from_the_connection(role: str, chunks: list[bytes]) -> None:
    conn = SmppConnection(role)  # type: ignore[arg-type]
    for chunk in chunks:
        conn.receive_data(chunk)
        for _ in range(1000):
            event = conn.next_event()
            if event is None:
                break
            assert isinstance(event, Pdu | ProtocolError)
            if isinstance(event, ProtocolError):
                answer = codec.decode(conn.nack_for(event))
                assert answer.is_response and answer.status == event.status
        else:
            pytest.fail("next_event did not settle")


@PROPS
@given(
    st.sampled_from(sorted(COMMAND_IDS.values())),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=300),
)
def test_random_body_only_raises_remote_protocol_error(cid: int, seq: int, body: bytes) -> None:
    frame = (16 + len(body)).to_bytes(4, "big") + cid.to_bytes(4, "big") + bytes(4)
    frame += seq.to_bytes(4, "big") + body
    try:
        pdu = codec.decode(frame)
    except RemoteProtocolError as exc:
        assert exc.sequence == seq and exc.command_id == cid and exc.status > 0
    else:
        assert pdu.sequence == seq


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid hot frame, then truncated, extended or with octets overwritten."""
    pdu = draw(pdus(HOT))
    frame = bytearray(codec.encode(pdu))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(16, max(16, len(frame))))
        what = draw(st.sampled_from(["set", "cut", "add"]))
        if what == "set" and at < len(frame):
            frame[at] = draw(st.sampled_from([0, 1, 0x40, 0xFF, 5, 0x24]))
        elif what == "cut":
            del frame[at:]
        else:
            frame[at:at] = draw(st.binary(min_size=1, max_size=6))
    frame[:4] = len(frame).to_bytes(4, "big")
    return bytes(frame)


def outcome(fn: Any, arg: Any) -> Any:
    try:
        return fn(arg)
    except ProtocolError as exc:
        return (type(exc).__name__, exc.status)


@PROPS
@given(mutated_frames())
def test_fast_decode_accepts_exactly_what_smpplib_does(frame: bytes) -> None:
    cmd = COMMAND_NAMES[int.from_bytes(frame[4:8], "big")]
    quick = outcome(fast.DECODERS[cmd], frame)
    slow = outcome(reference.decode, frame)
    assert quick == slow


ODD_VALUES = st.one_of(
    st.sampled_from([5, 6, 7, 16, 17, 18, 20, 21, 22, 64, 65, 66, 253, 254, 255]).map(
        lambda n: "7" * n
    ),
    st.sampled_from([16, 17, 253, 254, 255]).map(lambda n: b"\x01" * n),
    st.sampled_from(["a\x00b", "\x00", "é", "\u0100", "\u20ac", "48600000001"]),
    st.none(),
    st.booleans(),
    st.integers(-2, 70000),
    st.text(max_size=70),
    st.binary(max_size=300),
)


WRONG_INTS = st.sampled_from([True, False, None, -1, 256, "1", 1.0, b"\x01"])


@st.composite
def odd_pdus(draw: st.DrawFn) -> Pdu:
    """A hot Pdu with one thing wrong or right at a limit: an int of the wrong type or range, a
    string at its limit or one past it, with a NUL or outside latin-1, or any odd value."""
    pdu = draw(pdus(HOT))
    params = dict(pdu.params)
    layout = LAYOUTS[pdu.command]
    ints = [f for f in layout if f.kind == "i"]
    strings = [f for f in layout if f.kind in ("c", "sm")]
    how = draw(st.sampled_from(["int", "limit", "odd"]))
    if how == "int" and ints:
        params[draw(st.sampled_from(ints)).name] = draw(WRONG_INTS)
    elif how == "limit" and strings:
        f = draw(st.sampled_from(strings))
        size = f.max - 1 + draw(st.integers(0, 1))
        if f.kind == "c":
            params[f.name] = draw(st.sampled_from(["7", "\x00", "\u0100"])) * size
        else:
            params[f.name] = b"\x01" * (size + 1)
    else:
        names = [*params, *sorted(TLVS), "bogus"]
        params[draw(st.sampled_from(names))] = draw(ODD_VALUES)
    return Pdu(pdu.command, pdu.sequence, pdu.status, params, pdu.extra_tlvs)


@settings(PROPS, max_examples=200)
@given(st.one_of(pdus(HOT), odd_pdus()))
def test_fast_encode_produces_exactly_what_smpplib_does(pdu: Pdu) -> None:
    def run(fn: Any) -> Any:
        try:
            return fn(pdu)
        except LocalProtocolError:
            return "refused"

    assert run(fast.ENCODERS[pdu.command]) == run(reference.encode)


class _Client:
    """smpplib's PDU constructor asks its client for a sequence number."""

    sequence = 0

    def next_sequence(self) -> int:
        return 0


def _delegated_only(pdu: Pdu) -> dict[str, Any]:
    allowed = {f.name for f in LAYOUTS[pdu.command]} | set(reference.DELEGATED[pdu.command])
    return {k: v for k, v in pdu.params.items() if k in allowed}


@PROPS
@given(pdus(HOT))
def test_pure_smpplib_packs_and_parses_the_same(pdu: Pdu) -> None:
    params = _delegated_only(pdu)
    for name in reference.DELEGATED[pdu.command]:
        if params.get(name) in ("", b""):
            del params[name]  # smpplib leaves empty TLVs out
    pdu = Pdu(pdu.command, pdu.sequence, pdu.status, params)
    ours = fast.ENCODERS[pdu.command](pdu)

    obj = sm_smpp.make_pdu(pdu.command, client=_Client())
    obj.sequence = pdu.sequence
    obj.status = pdu.status
    for name, value in normalised(pdu).params.items():
        setattr(obj, name, value)
    assert obj.generate() == ours

    parsed = sm_smpp.parse_pdu(ours, client=_Client())
    assert parsed.sequence == pdu.sequence and parsed.status == pdu.status
    decoded = fast.DECODERS[pdu.command](ours)
    for name, value in decoded.params.items():
        got = getattr(parsed, name)
        if isinstance(value, str):
            assert (got is None and value == "") or bytes(got).decode("latin-1") == value
        else:
            assert (got is None and value == b"") or got == value


@PROPS
@given(pdus(HOT))
def test_fast_and_dispatching_codec_agree(pdu: Pdu) -> None:
    data = fast.ENCODERS[pdu.command](pdu)
    assert data == codec.encode(pdu)
    assume(len(data) > 16)
    assert codec.decode(data) == reference.decode(data)


def _boundary_values(f: Field) -> list[Any]:
    if f.kind == "c":
        n = f.max - 1
        return ["7" * n, "7" * (n + 1), "7" * (n - 1) + "\x00", "\u0100", "é" * n, None, 7, b"7"]
    if f.kind == "i":
        return [0, 255, 256, -1, True, False, None, "1", 1.0]
    return [b"\x01" * f.max, b"\x01" * (f.max + 1), b"", bytearray(b"ab"), "ab", None]


BOUNDARY_CASES = [
    (cmd, f.name, value) for cmd in HOT for f in LAYOUTS[cmd] for value in _boundary_values(f)
] + [
    (cmd, name, value)
    for cmd in HOT
    for name in ("message_payload", "ussd_service_op", "receipted_message_id", "bogus")
    for value in (None, b"", "", 0, 255, 256, True, b"x" * 70000, b"x" * 300, "x" * 65, "x" * 64)
]


@pytest.mark.parametrize(("cmd", "name", "value"), BOUNDARY_CASES)
def test_fast_encode_matches_smpplib_at_every_limit(cmd: str, name: str, value: Any) -> None:
    params = {name: value}
    if cmd in ("submit_sm", "deliver_sm") and name != "short_message":
        params["short_message"] = b"x"
    pdu = Pdu(cmd, 1, 0, params)

    def run(fn: Any) -> Any:
        try:
            return fn(pdu)
        except LocalProtocolError:
            return "refused"

    assert run(fast.ENCODERS[cmd]) == run(reference.encode)


EXHAUSTIVE_FRAMES = [
    codec.encode(
        Pdu(
            "deliver_sm",
            77,
            0,
            {
                "service_type": "USSD",
                "source_addr_ton": 1,
                "source_addr": "48600000001",
                "destination_addr": "*100#",
                "esm_class": 0x43,
                "schedule_delivery_time": "",
                "validity_period": "000001000000000R",
                "registered_delivery": 0x11,
                "short_message": b"*100#",
                "ussd_service_op": 1,
                "receipted_message_id": "abc",
                "sar_msg_ref_num": 513,
            },
            ((0x1400, b"v"),),
        )
    ),
    codec.encode(Pdu("submit_sm", 8, 0, {"short_message": b"\x01" * 254, "ussd_service_op": 2})),
    codec.encode(Pdu("submit_sm_resp", 5, 0, {"message_id": "0A1B2C", "dpf_result": 1})),
    codec.encode(Pdu("enquire_link", 6)),
]


@pytest.mark.parametrize(
    "frame", EXHAUSTIVE_FRAMES, ids=["deliver_sm", "submit_sm_254", "submit_sm_resp", "el"]
)
def test_fast_decode_matches_smpplib_for_every_octet_change_and_cut(frame: bytes) -> None:
    cmd = COMMAND_NAMES[int.from_bytes(frame[4:8], "big")]
    variants = []
    for at in range(16, len(frame) + 1):
        variants.append(frame[:at])
        for octet in (0x00, 0x01, 0x02, 0x7F, 0xFE, 0xFF):
            if at < len(frame):
                variants.append(frame[:at] + bytes([octet]) + frame[at + 1 :])
            variants.append(frame[:at] + bytes([octet]) + frame[at:])
    for variant in variants:
        fixed = len(variant).to_bytes(4, "big") + variant[4:]
        assert outcome(fast.DECODERS[cmd], fixed) == outcome(reference.decode, fixed)


def _unchecked_frame(cmd: str, values: dict[str, bytes | int]) -> bytes:
    """A frame packed from the layout with no limits checked, to build over-long fields."""
    body = bytearray()
    for f in LAYOUTS[cmd]:
        value = values.get(f.name, 0 if f.kind == "i" else b"")
        if f.kind == "c":
            assert isinstance(value, bytes)
            body += value + b"\x00"
        elif f.kind == "i":
            assert isinstance(value, int)
            body.append(value)
        else:
            assert isinstance(value, bytes)
            body += bytes([len(value) & 0xFF]) + value
    return HEADER.pack(16 + len(body), COMMAND_IDS[cmd], 0, 1) + bytes(body)


LENGTH_CASES = [
    (cmd, f.name, size)
    for cmd in HOT
    for f in LAYOUTS[cmd]
    if f.kind in ("c", "sm")
    for size in ((f.max - 2, f.max - 1, f.max, f.max + 1) if f.kind == "c" else (254, 255))
]


@pytest.mark.parametrize(("cmd", "name", "size"), LENGTH_CASES)
def test_fast_decode_enforces_every_field_limit(cmd: str, name: str, size: int) -> None:
    frame = _unchecked_frame(cmd, {name: b"7" * size})
    quick = outcome(fast.DECODERS[cmd], frame)
    assert quick == outcome(reference.decode, frame)
    limit = next(f.max for f in LAYOUTS[cmd] if f.name == name)
    assert isinstance(quick, Pdu) == (size < limit if name != "short_message" else size <= limit)
