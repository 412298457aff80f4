"""The whole ESME path against the simulator over loopback: MO in, replies out through the outbox,
receipts matched, faults survived (throttling, dropped connections, duplicate MO, early receipts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.binds import BindPool
from gateway.esme.session import SmppSession
from gateway.outbox.base import DeliveryTracker, MemoryOutbox, Outbox, reply_meta
from gateway.outbox.sender import OutboxSender
from gateway.settings import SmscProfile
from gateway.sms.events import InboundEvent, InboundMessage
from simulator.controller import SimulatorController
from tests.gateway.esme.submitting import submit

A = "48600000001"
B = "48600000002"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    async with SimulatorController(accounts={"idea24": "idea24"}) as controller:
        yield controller


def profile(sim: SimulatorController, **options: Any) -> SmscProfile:
    host, port = sim.smpp_address
    values: dict[str, Any] = {"response_timeout": 2.0, "source_addr": "2424", **options}
    return SmscProfile("idea24", "idea24", host, port, **values)


class Echo:
    """A stand-in router: SMS → "echo TEXT"; USSD → a menu, "1" → a final screen."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.seen: list[InboundMessage] = []

    async def __call__(self, event: InboundEvent) -> None:
        assert isinstance(event, InboundMessage)
        self.seen.append(event)
        if event.channel == "ussd":
            end = event.text == "1"
            text = "Koniec" if end else "Menu:\n1 Konto\n2 Pakiet"
            await self.outbox.put(event.msisdn, text, reply_meta(event, end=end))
        else:
            await self.outbox.put(event.msisdn, f"echo {event.text}", reply_meta(event))


@pytest.fixture
async def pool(sim: SimulatorController) -> AsyncIterator[BindPool]:
    outbox = MemoryOutbox()
    bind_pool = BindPool(
        [profile(sim)],
        outbox,
        Echo(outbox),
        session_options={"backoff_base": 0.05},
    )
    async with bind_pool:
        assert await bind_pool.sessions[0].wait_bound(5)
        yield bind_pool


async def wait_for(predicate: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - state spread over the simulator and the pool
            await asyncio.sleep(0.01)


def mt_texts(sim: SimulatorController, msisdn: str) -> list[str]:
    return [m.text for m in sim.messages(msisdn) if m.direction == "mt"]


def assert_once_in_order(texts: list[str], expected: list[str], doubles_allowed: int) -> None:
    """Nothing lost, order kept; a repeat only right after itself and only for a submit the SMSC
    took while the connection died before its submit_sm_resp reached us (SMPP cannot tell
    those apart from lost ones: at-least-once is the only safe choice for a password SMS)."""
    collapsed = [t for i, t in enumerate(texts) if i == 0 or texts[i - 1] != t]
    assert collapsed == expected
    assert len(texts) - len(collapsed) <= doubles_allowed


async def test_mo_sms_gets_its_reply(sim: SimulatorController, pool: BindPool) -> None:
    await sim.inject_mo(A, "2424", "INFO")
    [reply] = await sim.wait_messages(A, 1)
    assert reply.text == "echo INFO" and reply.kind == "sms"
    await wait_for(lambda: pool.tracker.delivered == 1)
    snap = pool.snapshot()
    [bind] = snap["binds"].values()
    assert bind["bound"] and bind["sent"] == 1 and bind["submitted_parts"] == 1
    assert snap["inbound"]["messages"] == 1 and snap["delivery"]["delivered"] == 1


async def test_ussd_menu_then_final(sim: SimulatorController, pool: BindPool) -> None:
    menu = await sim.ussd(A, "*100#")
    assert menu.text.startswith("Menu:") and not menu.end
    final = await sim.ussd(A, "1")
    assert final.text == "Koniec" and final.end
    assert (menu.op, final.op) == (2, 17)
    await wait_for(lambda: pool.senders[0].sent == 2)  # both replies left the outbox
    echo = pool._sink
    assert isinstance(echo, Echo)
    [dialled, answered] = echo.seen
    assert (dialled.channel, dialled.text, answered.text) == ("ussd", "*100#", "1")
    assert dialled.session_id == answered.session_id is not None


async def test_long_reply_parts_and_receipts_per_part(
    sim: SimulatorController, pool: BindPool
) -> None:
    text = "Faktura " + "x" * 300
    [item_id] = await pool.outbox.put(A, text, {"channel": "sms"})
    [got] = await sim.wait_messages(A, 1)
    assert got.text == text and got.parts == 3
    await wait_for(lambda: pool.tracker.state(item_id) == "delivered")
    assert pool.tracker.part_states(item_id) == ["delivered"] * 3


async def test_receipts_before_responses_are_matched(
    sim: SimulatorController, pool: BindPool
) -> None:
    sim.faults.update(receipt_first=True)
    ids = [(await pool.outbox.put(A, f"r{i}", {"channel": "sms"}))[0] for i in range(5)]
    await sim.wait_messages(A, 5)
    await wait_for(lambda: all(pool.tracker.state(i) == "delivered" for i in ids))
    assert pool.tracker.early >= 1 and pool.tracker.parked == 0


async def test_failed_delivery_is_counted(sim: SimulatorController, pool: BindPool) -> None:
    sim.faults.update(receipt_states=("UNDELIV",))
    [item_id] = await pool.outbox.put(A, "x", {"channel": "sms"})
    await wait_for(lambda: pool.tracker.state(item_id) == "failed")
    assert pool.tracker.failed == 1


async def test_the_same_mo_twice_back_to_back_is_answered_twice(
    sim: SimulatorController, pool: BindPool
) -> None:
    """Both copies were answered in time on a live connection: the SMSC had no reason to offer
    the MO again, so the second is the subscriber's own (PAKIET, PAKIET) and gets its answer."""
    sim.faults.update(duplicate_mo=True)
    await sim.inject_mo(A, "2424", "PAKIET")
    await sim.wait_messages(A, 2)
    assert mt_texts(sim, A) == ["echo PAKIET", "echo PAKIET"]
    assert pool.inbound.duplicates == 0


async def test_mo_offered_again_after_a_dropped_connection_is_answered_once(
    sim: SimulatorController, pool: BindPool
) -> None:
    await sim.inject_mo(A, "2424", "PAKIET")
    await sim.wait_messages(A, 1)
    pool.inbound.connection_lost()  # our deliver_sm_resp may have died with the connection
    await sim.inject_mo(A, "2424", "PAKIET")
    await wait_for(lambda: pool.inbound.duplicates == 1)
    await asyncio.sleep(0.2)  # a second reply, if any, would be here by now
    assert mt_texts(sim, A) == ["echo PAKIET"]


async def test_dropped_connection_mid_traffic_loses_nothing_and_keeps_order(
    sim: SimulatorController, pool: BindPool
) -> None:
    sim.faults.update(drop_after=15)
    for n in range(20):
        for msisdn in (A, B):
            await pool.outbox.put(msisdn, f"{msisdn[-1]}:{n}", {"channel": "sms"})
    await sim.wait_messages(A, 20, wait=15)
    await sim.wait_messages(B, 20, wait=15)
    await wait_for(lambda: pool.sessions[0].tx.stats.connects >= 2)
    # the last submit_sm_resp may still be on its way
    await wait_for(lambda: not pool.outbox._queues, 10)  # type: ignore[attr-defined]
    for msisdn in (A, B):
        expected = [f"{msisdn[-1]}:{n}" for n in range(20)]
        assert_once_in_order(mt_texts(sim, msisdn), expected, doubles_allowed=1)


async def test_smsc_throttling_slows_down_and_drops_nothing(
    sim: SimulatorController, pool: BindPool
) -> None:
    sim.faults.update(throttle=20)
    started = time.monotonic()
    for n in range(40):
        await pool.outbox.put(f"4860000{n:04d}", f"t{n}", {"channel": "sms"})
    await wait_for(lambda: sum(1 for m in sim.messages() if m.direction == "mt") >= 40, 20)
    assert time.monotonic() - started >= 0.9  # 40 at 20/s: at least one full window later
    assert pool.sessions[0].throttle.pushbacks >= 1
    assert sorted(m.text for m in sim.messages() if m.direction == "mt") == sorted(
        f"t{n}" for n in range(40)
    )


async def test_drain_once_and_graceful_shutdown(sim: SimulatorController) -> None:
    outbox = MemoryOutbox()
    session = SmppSession(profile(sim, window=4))
    tracker = DeliveryTracker()
    sender = OutboxSender(outbox, session, tracker=tracker)
    async with session:
        assert await session.wait_bound(5)
        for n in range(10):
            await outbox.put(A, f"d{n}", {"channel": "sms"})
        sim.faults.update(delay=0.05)
        assert await sender.drain_once(10) == 10
        assert await outbox.depth() == 0 and sender.sent == 10
    assert mt_texts(sim, A) == [f"d{n}" for n in range(10)]
    assert not session.bound


async def test_permanent_rejection_marks_failed_and_next_goes(sim: SimulatorController) -> None:
    outbox = MemoryOutbox()
    async with SmppSession(profile(sim)) as session:
        assert await session.wait_bound(5)
        sender = OutboxSender(outbox, session)
        await outbox.put(A, ["rejected", "fine"], {"channel": "sms"})
        sim.faults.update(reject_status=0x0B, reject_count=1)  # ESME_RINVDSTADR
        await sender.drain_once(10)
    [(item, error)] = await outbox.failed()
    assert item.text == "rejected" and "ESME_RINVDSTADR" in error
    assert mt_texts(sim, A) == ["fine"]


async def test_a_stalled_bind_does_not_hold_the_others_work(sim: SimulatorController) -> None:
    """Two binds share one outbox; one SMSC stops answering. The window of the stalled bind
    stays full (it holds exactly ``window`` items) and everything else leaves via the other."""
    from gateway.smpp.pdu import Pdu
    from tests.gateway.esme.test_session_smsc import Client, MiniSmsc

    stalled = await MiniSmsc({"idea24": "idea24"}).start()

    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    stalled.submit_hook = hold
    outbox = MemoryOutbox()
    slow = stalled.profile(window=3, response_timeout=30.0)
    pool = BindPool([slow, profile(sim, window=8)], outbox, Echo(outbox))
    try:
        async with pool:
            assert await pool.sessions[0].wait_bound(5) and await pool.sessions[1].wait_bound(5)
            for n in range(40):
                await outbox.put(f"4860000{n:04d}", f"m{n}", {"channel": "sms"})

            def delivered() -> int:
                return sum(1 for m in sim.messages() if m.direction == "mt")

            # Everything reaches a handset except what the stalled SMSC holds. How many it got
            # depends on which sender was quicker (under load the other may take nearly all),
            # but never more than its window, and none of it is lost.
            await wait_for(lambda: delivered() + len(stalled.held) == 40, 10)
            held = len(stalled.held)
            assert 1 <= held <= 3, held
            assert await outbox.depth() == held
            stalled.submit_hook = None
            stalled.release_held()
            await wait_for(lambda: pool.senders[0].sent == held)
            assert await outbox.depth() == 0
    finally:
        await stalled.stop()


async def test_window_full_and_response_timeout_against_the_simulator(
    sim: SimulatorController,
) -> None:
    from gateway.esme.records import SubmitError

    params = {"source_addr": "2424", "destination_addr": A, "short_message": b"w"}
    async with SmppSession(profile(sim, window=4, response_timeout=0.6)) as session:
        assert await session.wait_bound(5)
        sim.faults.update(delay=0.3)
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, session.tx.in_flight)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        results = await session.submit_many([[params]] * 8)
        elapsed = time.monotonic() - started
        watcher.cancel()
        assert all(not isinstance(r, SubmitError) for r in results)
        assert peak == 4 and 0.55 <= elapsed < 3  # two rounds of 4, 0.3 s each
        sim.faults.update(delay=1.0)
        with pytest.raises(SubmitError) as info:
            await submit(session, [dict(params, short_message=b"slow")])
        assert info.value.temporary and session.tx.stats.timeouts == 1
        await wait_for(lambda: session.tx.stats.late_responses == 1, 3)
        assert session.bound  # one timeout is not a dead link


async def test_enquire_link_both_ways_with_the_simulator() -> None:
    """Each side's enquire_link is traffic that keeps the other quiet, so one side at a time."""
    async with SimulatorController(accounts={"idea24": "idea24"}, enquire_link_interval=0.2) as sim:
        async with SmppSession(profile(sim, enquire_link=30.0)) as session:
            assert await session.wait_bound(5)
            await wait_for(lambda: session.tx.stats.enquire_links_answered >= 2, 5)
        sim.smsc.enquire_link_interval = 30.0
        async with SmppSession(profile(sim, enquire_link=0.15)) as session:
            assert await session.wait_bound(5)
            await wait_for(lambda: session.tx.stats.enquire_links_sent >= 2, 5)
            assert session.bound and session.tx.stats.connects == 1
            assert session.tx.stats.timeouts == 0  # every one was answered


async def test_smsc_restart_on_the_same_port(sim: SimulatorController) -> None:
    host, port = sim.smpp_address
    outbox = MemoryOutbox()
    session = SmppSession(profile(sim), backoff_base=0.05, backoff_cap=0.2)
    sender = OutboxSender(outbox, session)
    delivered: list[str] = []
    async with session:
        assert await session.wait_bound(5)
        sender.start()
        for n in range(30):
            await outbox.put(A, f"s{n}", {"channel": "sms"})
        await sim.wait_messages(A, 10, wait=10)
        await sim.stop()  # the SMSC goes away mid-traffic...
        delivered += mt_texts(sim, A)
        async with SimulatorController(
            accounts={"idea24": "idea24"}, host=host, port=port
        ) as again:
            await again.wait_messages(A, 30 - len(delivered), wait=20)  # ...and comes back
            await wait_for(lambda: not outbox._queues, 10)
            delivered += mt_texts(again, A)
        await sender.stop()
    assert delivered == [f"s{n}" for n in range(30)]
    assert session.tx.stats.connects >= 2


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def shared_store(request: pytest.FixtureRequest) -> tuple[str, str]:
    kind = str(request.param)
    if kind == "redis":
        return kind, request.getfixturevalue("redis_server_url")
    return kind, request.getfixturevalue("postgres_url")


async def test_two_processes_two_binds_share_one_outbox(
    sim: SimulatorController, shared_store: tuple[str, str], redis_prefix: str
) -> None:
    """Two gateway "processes" (own outbox object, own bind) drain one shared outbox while the
    SMSC drops a connection: every reply leaves once, each subscriber's in order."""
    kind, url = shared_store
    cleanup: list[Any] = []
    if kind == "redis":
        import redis.asyncio as aioredis

        from gateway.outbox.redis import RedisOutbox

        client = aioredis.from_url(url)
        boxes: list[Outbox] = [RedisOutbox(client, redis_prefix) for _ in range(3)]

        async def close_redis() -> None:
            async for key in client.scan_iter(match=f"*{redis_prefix}*"):
                await client.delete(key)
            await client.aclose()

        cleanup.append(close_redis)
    else:
        from sqlalchemy.ext.asyncio import create_async_engine

        from gateway.outbox.sql import SqlOutbox, outbox_table

        engine = create_async_engine(url)
        boxes = [SqlOutbox(engine, poll=0.02) for _ in range(3)]
        await boxes[0].create()  # type: ignore[attr-defined]
        async with engine.begin() as conn:
            await conn.execute(outbox_table.delete())
        cleanup.append(engine.dispose)
    producer, *workers = boxes
    subscribers = [f"4860000010{i}" for i in range(4)]
    try:
        for n in range(10):
            for msisdn in subscribers:
                await producer.put(msisdn, f"{msisdn[-1]}:{n}", {"channel": "sms"})
        sim.faults.update(drop_after=12)
        sessions = [SmppSession(profile(sim, window=4), backoff_base=0.05) for _ in workers]
        senders = [
            OutboxSender(box, s, consumer=f"proc{i}", retry_base=0.05, poll=0.05)
            for i, (box, s) in enumerate(zip(workers, sessions, strict=True))
        ]
        for s in sessions:
            await s.start()
        for sender in senders:
            sender.start()
        try:
            await wait_for(lambda: sum(1 for m in sim.messages() if m.direction == "mt") >= 40, 30)
            async with asyncio.timeout(15):
                while await producer.depth():  # noqa: ASYNC110 - a store query, no event
                    await asyncio.sleep(0.05)
        finally:
            for sender in senders:
                await sender.stop()
            for s in sessions:
                await s.close()
        for msisdn in subscribers:
            expected = [f"{msisdn[-1]}:{n}" for n in range(10)]
            assert_once_in_order(mt_texts(sim, msisdn), expected, doubles_allowed=1)
        assert all(sender.sent > 0 for sender in senders)  # both processes did work
    finally:
        for step in cleanup:
            await step()


async def test_ussd_repeated_answers_are_turns_and_a_redelivery_is_still_dropped() -> None:
    """The simulator echoes its_session_info unchanged through the session, so ``2`` answered
    twice in a row is the same PDU twice: only the turn tells them apart (the second arrived
    after the menu for the first left). One answer is held past the simulator's deliver_sm
    timeout, so the SMSC redelivers it (a true redelivery): that copy is dropped."""
    async with SimulatorController(accounts={"idea24": "idea24"}, response_timeout=0.5) as sim:
        outbox = MemoryOutbox()
        stall_on = 3  # the second "2": a repeat of the turn before it, and redelivered

        class Stalling(Echo):
            async def __call__(self, event: InboundEvent) -> None:
                if len(self.seen) == stall_on - 1:
                    link = bind_pool.sessions[0].tx
                    before = link.stats.inbound
                    await wait_for(lambda: link.stats.inbound > before)  # the copy came in
                await super().__call__(event)

        echo = Stalling(outbox)
        bind_pool = BindPool([profile(sim)], outbox, echo)
        async with bind_pool:
            assert await bind_pool.sessions[0].wait_bound(5)
            answers = ["*100#", "2", "2", "00", "2", "00", "00"]
            for answer in answers:
                screen = await sim.ussd(A, answer)
                assert screen.text.startswith("Menu:") and not screen.end
            assert [m.text for m in echo.seen] == answers
            assert len({m.session_id for m in echo.seen}) == 1
            assert bind_pool.inbound.duplicates >= 1  # the redelivered "2"
            await wait_for(lambda: bind_pool.senders[0].sent == len(answers))
            assert len(mt_texts(sim, A)) == len(answers)  # no menu for the dropped copy


async def test_a_throttled_bind_does_not_stall_the_others_and_windows_stay_full() -> None:
    """Two binds share one outbox. One SMSC answers every submit ESME_RTHROTTLED: that bind
    pauses and holds at most its window (then one item) while the other carries the rest. The
    other SMSC holds its responses and lets them go a few at a time: whenever there is work
    its window is refilled to the brim at once."""
    from gateway.smpp.pdu import Pdu, Status
    from tests.gateway.esme.test_session_smsc import Client, MiniSmsc

    congested = await MiniSmsc({"idea24": "idea24"}).start()
    holding = await MiniSmsc({"idea24": "idea24"}).start()

    async def throttled(client: Client, pdu: Pdu) -> int | None:
        return int(Status.ESME_RTHROTTLED)

    async def hold(client: Client, pdu: Pdu) -> int | None:
        return None

    congested.submit_hook = throttled
    holding.submit_hook = hold
    outbox = MemoryOutbox()
    window = 4
    pool = BindPool(
        [
            congested.profile(window=3, response_timeout=30.0),
            holding.profile(window=window, response_timeout=30.0),
        ],
        outbox,
        Echo(outbox),
    )
    total = 24
    try:
        async with pool:
            assert all([await s.wait_bound(5) for s in pool.sessions])
            for n in range(total):
                await outbox.put(f"4860000{n:04d}", f"m{n}", {"channel": "sms"})
            congested_sender = pool.senders[0]

            def work_for_holding() -> int:
                return total - len(holding.accepted) - congested_sender.busy

            while work_for_holding() > 0:
                # Whenever there is work, the window is full (or holds all there is).
                await wait_for(lambda: len(holding.held) == min(window, work_for_holding()))
                await wait_for(lambda: pool.sessions[1].tx.in_flight == len(holding.held))
                assert congested_sender.busy <= 3  # never more than its own window
                releasing, holding.held = holding.held[:2], holding.held[2:]
                for client, pdu in releasing:
                    holding.accept(client, pdu)
            assert congested.submits and not congested.accepted  # it was throttling all along
            assert pool.sessions[0].pushbacks >= 1
            congested.submit_hook = None
            holding.submit_hook = None
            holding.release_held()
            await wait_for(lambda: len(congested.accepted) + len(holding.accepted) == total, 15)
            sent = [str(p.get("destination_addr")) for p in congested.accepted.values()]
            sent += [str(p.get("destination_addr")) for p in holding.accepted.values()]
            assert sorted(sent) == [f"4860000{n:04d}" for n in range(total)]  # each once
    finally:
        await congested.stop()
        await holding.stop()


async def test_a_reply_the_link_never_sent_is_not_a_try(sim: SimulatorController) -> None:
    """Taken while the link was down (it dropped between take and send): put back after the
    base delay every time, not after a growing back-off, and never failed for it."""
    outbox = MemoryOutbox()
    session = SmppSession(profile(sim))  # never started: every send finds the link down
    sender = OutboxSender(outbox, session, retry_base=0.02, max_attempts=3)
    await outbox.put(A, "later", {"channel": "sms"})
    for _ in range(8):
        # one item each time, as soon as it is due again: a back-off would outgrow the wait
        assert await sender.drain_once(wait=2.0) == 1
    assert sender.retried == 8 and sender.failed == 0 and not await outbox.failed()
    assert await outbox.depth() == 1


async def test_a_reply_lost_with_the_link_again_and_again_is_retried_within_the_cap(
    sim: SimulatorController,
) -> None:
    """Written, then the connection closed before any answer, for the tenth time: the retry
    waits at most LINK_LOST_RETRY_CAP (the link's reconnect paces it), not 2**9 s; a reply the
    SMSC refused as busy still backs off in full."""
    import dataclasses

    from gateway.esme.records import LinkDown, SubmitError
    from gateway.esme.session import _message_result
    from gateway.outbox.sender import LINK_LOST_RETRY_CAP

    outbox = MemoryOutbox()
    delays: list[float] = []
    real_retry = outbox.retry

    async def retry(item: Any, delay: float, error: str, accepted: Any) -> None:
        delays.append(delay)
        await real_retry(item, delay, error, accepted)

    outbox.retry = retry  # type: ignore[method-assign]
    sender = OutboxSender(outbox, SmppSession(profile(sim)), retry_base=1.0, retry_cap=300.0)
    for msisdn, outcome in (
        (A, LinkDown("link lost with the request outstanding", attempted=True)),
        ("48600000002", SubmitError("refused: ESME_RMSGQFUL", status=0x14, temporary=True)),
    ):
        await outbox.put(msisdn, "x", {"channel": "sms"})
        [taken] = await outbox.take("c1", 1)
        item = dataclasses.replace(taken, attempts=10)
        await sender._settle(item, 1, [0], _message_result([outcome], 0, 1))
    assert delays[0] <= LINK_LOST_RETRY_CAP, delays
    assert delays[1] == 300.0, delays
