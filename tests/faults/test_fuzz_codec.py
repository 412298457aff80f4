"""The sans-I/O codec under bad input: each malformed PDU gets the right status, memory stays flat.

Mutations start from valid submit_sm (what an ESME sends the SMSC) and deliver_sm (what an SMSC
sends the ESME) and break one thing: a lying or huge command_length, a cut body, a TLV of the
wrong size or running past the end, a C-string TLV without its NUL, an sm_length that lies, an
unknown command id, random octets. After each one a valid enquire_link follows on the same
connection: it must still be read unless the framing was lost (then the connection is CLOSED).
Fixed seeds (derandomize) keep the run bounded and repeatable.
"""

from __future__ import annotations

import tracemalloc
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.smpp import codec
from gateway.smpp.codec import BindState, SmppConnection
from gateway.smpp.errors import ProtocolError
from gateway.smpp.pdu import COMMAND_IDS, Pdu, Status
from gateway.sms import decoding
from tests.faults.fuzz_support import (
    HEADER,
    Mutant,
    bind,
    deliver_sm,
    enquire_link,
    frame,
    mutants,
    status_name,
    submit_sm,
    tlv,
)

FUZZ = settings(
    max_examples=600,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _bound(role: str) -> SmppConnection:
    """A connection past its bind, so submit_sm / deliver_sm are allowed by the state table."""
    conn = SmppConnection(role)  # type: ignore[arg-type]
    if role == "smsc":
        conn.receive_data(bind(1, "idea24", "pw"))
        event = conn.next_event()
        assert isinstance(event, Pdu)
        conn.send(event.response(0, system_id="SMSC"))
    else:
        conn.send(Pdu("bind_transceiver", 0, 0, {"system_id": "idea24", "password": "pw"}))
        conn.receive_data(HEADER.pack(17, COMMAND_IDS["bind_transceiver_resp"], 0, 1) + b"\0")
        assert isinstance(conn.next_event(), Pdu)
    assert conn.state is BindState.BOUND_TRX
    return conn


def _check(role: str, m: Mutant, seen: Counter[str]) -> None:
    conn = _bound(role)
    conn.receive_data(m.data + enquire_link(4242))
    event = conn.next_event()
    assert event is not None, m.kind
    if isinstance(event, ProtocolError):
        seen[f"{m.kind}:{status_name(event.status)}"] += 1
        if m.statuses:
            assert event.status in m.statuses, (m.kind, status_name(event.status))
        nack = conn.nack_for(event)
        _, command_id, status, sequence = HEADER.unpack(nack)
        assert status == event.status != Status.ESME_ROK
        assert sequence == (event.sequence & 0xFFFFFFFF)
        if event.status in (Status.ESME_RINVCMDLEN, Status.ESME_RINVCMDID):
            assert command_id == COMMAND_IDS["generic_nack"]
    else:
        # Only random octets may still make a valid PDU (a flipped flag, a different address).
        assert not m.statuses, (m.kind, event)
        seen[f"{m.kind}:decoded"] += 1
    if m.fatal:
        assert conn.state is BindState.CLOSED
        assert conn.next_event() is None
        return
    follow = conn.next_event()
    if isinstance(follow, ProtocolError) and m.kind == "flipped_bytes":
        return  # a flipped sm_length may leave octets that the enquire_link is read after
    assert isinstance(follow, Pdu) and follow.command == "enquire_link", (m.kind, follow)


def test_mutated_pdus_get_the_right_status_and_the_stream_goes_on() -> None:
    seen: Counter[str] = Counter()

    @FUZZ
    @given(st.sampled_from(["smsc", "esme"]), st.data())
    def run(role: str, data: st.DataObject) -> None:
        valid = submit_sm if role == "smsc" else deliver_sm
        _check(role, data.draw(mutants(valid)), seen)

    run()
    kinds = Counter(k.split(":")[0] for k in seen.elements())
    print(f"\nmutated PDUs: {sum(seen.values())} checked, by kind {dict(sorted(kinds.items()))}")
    assert len(kinds) == 9  # every kind of mutation was exercised


def test_truncated_streams_wait_for_more_and_resume() -> None:
    """A stream cut anywhere gives nothing (not an error) until the rest arrives."""
    counted = 0

    @FUZZ
    @given(st.lists(st.binary(max_size=40), min_size=1, max_size=4), st.data())
    def run(texts: list[bytes], data: st.DataObject) -> None:
        nonlocal counted
        stream = b"".join(submit_sm(i + 2, t) for i, t in enumerate(texts))
        cut = data.draw(st.integers(0, len(stream) - 1))
        conn = _bound("smsc")
        conn.receive_data(stream[:cut])
        whole = 0
        while (event := conn.next_event()) is not None:
            assert isinstance(event, Pdu)
            whole += 1
        conn.receive_data(stream[cut:])
        while (event := conn.next_event()) is not None:
            assert isinstance(event, Pdu)
            whole += 1
        assert whole == len(texts)
        counted += 1

    run()
    print(f"\ntruncated streams: {counted} cut and resumed without an error")


def test_wrong_data_coding_decodes_to_text_never_raises() -> None:
    """Any data_coding with any octets: the PDU decodes and the text layer gives a str."""
    counted = 0

    @FUZZ
    @given(st.integers(0, 255), st.binary(max_size=160), st.booleans())
    def run(dc: int, body: bytes, udhi: bool) -> None:
        nonlocal counted
        pdu = codec.decode(deliver_sm(9, body, data_coding=dc, esm_class=0x40 if udhi else 0))
        try:
            _, decoded = decoding.decode_short_message(pdu.params["short_message"], dc, udhi)
        except decoding.UdhError:
            assert udhi  # only a malformed header may refuse, and only when one is announced
        else:
            assert isinstance(decoded, str)
        counted += 1

    run()
    print(f"\nwrong data_coding: {counted} bodies decoded without an exception")


def test_memory_stays_bounded_under_garbage() -> None:
    """10,000 bad PDUs through one connection: the framer holds one PDU at most, heap stays flat."""
    conn = _bound("smsc")
    sid = COMMAND_IDS["submit_sm"]
    bad = [
        frame(0x00000999, b"junk", sequence=1),  # unknown command
        frame(sid, b"\x00" * 3, sequence=2),  # body cut
        frame(sid, b"\x00abc\x00\x01", sequence=3),  # fields run past the end
        frame(sid, submit_sm(4)[16:] + tlv(0x1400, b"ab", length=9), sequence=4),  # TLV overrun
    ]
    errors = 0
    peak_buffer = 0

    def pump(rounds: int) -> None:
        nonlocal errors, peak_buffer
        for i in range(rounds):
            conn.receive_data(bad[i % len(bad)])
            peak_buffer = max(peak_buffer, conn._framer.buffered)
            while (event := conn.next_event()) is not None:
                assert isinstance(event, ProtocolError)
                conn.nack_for(event)
                errors += 1

    pump(500)  # warm caches before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        pump(10_000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert conn.state is BindState.BOUND_TRX
    assert peak_buffer <= max(len(b) for b in bad)
    assert grown < 64 * 1024, grown
    # A declared length of the maximum, trickled in: held until whole, then gone.
    conn.receive_data(HEADER.pack(codec.MAX_PDU_LENGTH, COMMAND_IDS["submit_sm"], 0, 5))
    for _ in range(64):
        conn.receive_data(b"\x00" * 1023)
        assert conn._framer.buffered <= codec.MAX_PDU_LENGTH
    conn.receive_data(b"\x00" * (codec.MAX_PDU_LENGTH - 16 - 64 * 1023))
    assert isinstance(conn.next_event(), ProtocolError)
    assert conn._framer.buffered == 0
    print(
        f"\nmemory: {errors} bad PDUs answered, framer peak {peak_buffer} B, "
        f"heap growth {grown} B over 10,000"
    )
