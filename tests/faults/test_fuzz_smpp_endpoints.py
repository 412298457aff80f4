"""Both SMPP endpoints over real loopback sockets, fed garbage while a well-behaved peer is served.

- The simulator's SMSC: bad clients bind and send mutated submit_sm (and, unbound, huge lengths
  and half PDUs); a good client keeps submitting and every submit_sm_resp must be OK.
- The gateway's ESME (``SmppSession`` with the real ``InboundProcessor``): a fake SMSC binds it
  and sends mutated deliver_sm; a second ESME bound to a well-behaved SMSC keeps getting MO,
  all of which must reach its sink and be acknowledged.
Each bad PDU must get the status :mod:`tests.faults.fuzz_support` names for its mutation (or any
refusal for random octets) and the connection must survive it, unless the framing was lost:
then the answer is a generic_nack with ESME_RINVCMDLEN and the connection is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from gateway.esme.inbound import InboundProcessor
from gateway.esme.session import SmppSession
from gateway.settings import SmscProfile
from gateway.smpp import codec
from gateway.smpp.pdu import Status
from gateway.sms.events import InboundEvent, InboundMessage
from simulator.controller import SimulatorController
from tests.faults.fuzz_support import (
    HEADER,
    Mutant,
    Outcome,
    Progress,
    RawPeer,
    accept_bind,
    bind,
    collect,
    deliver_sm,
    frame,
    mutants,
    probe,
    raw_server,
    status_name,
    submit_sm,
)

MUTANTS = 150


def judge(m: Mutant, out: Outcome, counts: Counter[str]) -> None:
    """The rules every endpoint must keep for one bad PDU."""
    if out.answer is not None:
        command, status = out.answer
        counts[f"{command}:{status_name(status)}"] += 1
        if m.statuses:
            assert status in m.statuses, (m.kind, command, status_name(status))
        if status in (Status.ESME_RINVCMDLEN, Status.ESME_RINVCMDID):
            assert command == "generic_nack", (m.kind, command)
    else:
        counts["no answer"] += 1
        assert out.closed, m.kind  # silence is only acceptable from a peer that hung up
    if m.fatal:
        assert out.answer is not None and out.closed, (m.kind, out)
    elif m.kind != "flipped_bytes":
        assert not out.closed, (m.kind, out)


class GoodClient:
    """Binds and submits in a loop; every answer must be OK."""

    def __init__(self, peer: RawPeer) -> None:
        self.peer = peer
        self.served = Progress()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        seq = 10
        while not self.stop.is_set():
            seq += 1
            self.peer.send(submit_sm(seq, b"good"))
            resp = await self.peer.read_response(seq)
            assert resp.command == "submit_sm_resp" and resp.status == 0, resp
            self.served.add()
            await asyncio.sleep(0.005)


async def bound_client(host: str, port: int) -> RawPeer:
    peer = await RawPeer.connect(host, port)
    peer.send(bind(1, "idea24", "idea24"))
    resp = await peer.read_response(1)
    assert resp.status == 0
    return peer


async def test_simulator_answers_garbage_and_keeps_serving_others() -> None:
    bad_pdus = collect(mutants(submit_sm), MUTANTS)
    counts: Counter[str] = Counter()
    drops = 0
    async with SimulatorController(accounts={"idea24": "idea24"}) as sim:
        host, port = sim.smpp_address
        good = GoodClient(await bound_client(host, port))
        serving = asyncio.create_task(good.run())
        bad = await bound_client(host, port)
        for i, m in enumerate(bad_pdus):
            out = await probe(bad, m, 1000)
            judge(m, out, counts)
            if out.closed:
                drops += 1
                await bad.aclose()
                bad = await bound_client(host, port)
            assert not serving.done(), f"the good client failed after mutant {i}"
        # Unbound garbage: a huge length before any bind, then half a PDU left hanging.
        raw = await RawPeer.connect(host, port)
        huge = frame(4, b"x", sequence=7, length=1 << 31)
        out = await probe(raw, Mutant("huge", huge, fatal=True), 7)
        assert out.answer == ("generic_nack", Status.ESME_RINVCMDLEN) and out.closed
        half = await RawPeer.connect(host, port)
        half.send(submit_sm(5)[:20])
        async with asyncio.timeout(5):
            await good.served.more(20)
        # Bounded: only the live connections remain, and the half PDU waits in a small buffer.
        sessions = [s for s in sim.smsc.sessions if not s.closed]
        assert len(sessions) == 3, [s.describe() for s in sessions]
        buffered = [getattr(s, "framer", s.conn._framer).buffered for s in sessions]
        assert max(buffered) == 20, buffered  # the half PDU waits; nothing else is held
        good.stop.set()
        await serving
        for peer in (good.peer, bad, raw, half):
            await peer.aclose()
    print(
        f"\nsimulator: {len(bad_pdus)} bad PDUs, {drops} connections dropped, "
        f"good client served {good.served.count} submit_sm OK; "
        f"answers {dict(sorted(counts.items()))}"
    )


@contextlib.asynccontextmanager
async def esme(port: int, sink_events: list[InboundEvent]) -> AsyncIterator[SmppSession]:
    async def sink(event: InboundEvent) -> None:
        sink_events.append(event)

    profile = SmscProfile("idea24", "secret", "127.0.0.1", port, enquire_link=0.0)
    session = SmppSession(
        profile, InboundProcessor(sink), backoff_base=0.01, backoff_cap=0.05, stable_after=0.0
    )
    async with session:
        assert await session.wait_bound(5)
        yield session


async def test_gateway_esme_answers_garbage_and_keeps_serving_others() -> None:
    bad_pdus = collect(mutants(deliver_sm), MUTANTS)
    counts: Counter[str] = Counter()
    connections = 0
    todo = list(enumerate(bad_pdus))
    finished = asyncio.Event()

    failures: list[BaseException] = []

    async def garbage_smsc(peer: RawPeer) -> None:
        nonlocal connections
        connections += 1
        try:
            await accept_bind(peer)
            while todo:
                _, m = todo.pop(0)
                out = await probe(peer, m, 1000)
                judge(m, out, counts)
                if out.closed:
                    return  # the ESME hung up; it reconnects and binds again
        except (AssertionError, TimeoutError) as exc:
            failures.append(exc)
        finished.set()
        await peer.closed(within=30)

    good_acks = Progress()

    async def good_smsc(peer: RawPeer) -> None:
        await accept_bind(peer)
        seq = 100
        while True:
            seq += 1
            peer.send(deliver_sm(seq, f"PAKIET {seq}".encode()))
            resp = await peer.read_response(seq)
            assert resp.command == "deliver_sm_resp" and resp.status == 0, resp
            good_acks.add()
            await asyncio.sleep(0.005)

    bad_events: list[InboundEvent] = []
    good_events: list[InboundEvent] = []
    async with (
        raw_server(garbage_smsc) as (_, bad_port),
        raw_server(good_smsc) as (_, good_port),
        esme(good_port, good_events),
        esme(bad_port, bad_events),
    ):
        async with asyncio.timeout(60):
            await finished.wait()
        if failures:
            raise failures[0]
        async with asyncio.timeout(5):
            await good_acks.more(20)
    texts = [e.text for e in good_events if isinstance(e, InboundMessage)]
    assert len(texts) >= good_acks.count and all(t.startswith("PAKIET ") for t in texts)
    assert len(texts) == len(set(texts))  # each MO once
    print(
        f"\ngateway ESME: {len(bad_pdus)} bad PDUs over {connections} connections, "
        f"{len(bad_events)} decoded anyway; good SMSC got {good_acks.count} deliver_sm_resp OK; "
        f"answers {dict(sorted(counts.items()))}"
    )


def test_raw_frame_builders_are_sane() -> None:
    """The raw frames these tests build decode as what they claim."""
    assert codec.decode(submit_sm(3)).command == "submit_sm"
    assert codec.decode(deliver_sm(3)).command == "deliver_sm"
    assert HEADER.unpack(frame(4, b"", length=16))[0] == 16
