"""A submit_sm_resp that comes after the response timeout, over loopback.

The SMSC took the submit; only its answer was slow. The link remembers the timed-out request for
a grace period on the same connection and reports the late answer; the outbox sender holds the
item's retry meanwhile and marks it sent with the late message id, so the handset gets the SMS
once and the delivery receipt still matches. When the answer comes later than the grace, or the
connection closes first, the retry goes out (the documented at-least-once case).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_outbox_link import A, Echo, mt_texts, profile, wait_for

from gateway.binds import BindPool
from gateway.esme.session import SmppSession
from gateway.outbox.base import DeliveryTracker, MemoryOutbox
from gateway.outbox.sender import OutboxSender
from gateway.smpp.pdu import Pdu
from simulator.controller import SimulatorController
from tests.gateway.esme.test_session_smsc import Client, MiniSmsc


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    async with SimulatorController(accounts={"idea24": "idea24"}) as controller:
        yield controller


@pytest.fixture
async def smsc() -> AsyncIterator[MiniSmsc]:
    server = await MiniSmsc().start()
    try:
        yield server
    finally:
        await server.stop()


def late_pool(sim: SimulatorController, **session_options: Any) -> BindPool:
    outbox = MemoryOutbox()
    return BindPool(
        [profile(sim, response_timeout=0.3)],
        outbox,
        Echo(outbox),
        session_options={"backoff_base": 0.05, **session_options},
    )


async def test_late_ok_cancels_the_retry_and_the_receipt_matches(
    sim: SimulatorController,
) -> None:
    async with late_pool(sim) as pool:  # grace: 2 x 0.3 s
        assert await pool.sessions[0].wait_bound(5)
        sender, link = pool.senders[0], pool.sessions[0].tx
        sim.faults.update(delay=0.5)  # past the 0.3 s timeout, within the grace
        [item_id] = await pool.outbox.put(A, "late but taken", {"channel": "sms"})
        await wait_for(lambda: sender.sent == 1)
        sim.faults.update(delay=0.0)
        await wait_for(lambda: pool.tracker.delivered == 1)  # the receipt found its message
        assert link.stats.timeouts == 1 and link.stats.late_accepted == 1
        assert sender.late_saved == 1 and sender.retried == 0 and sender.resent_unanswered == 0
        assert await pool.outbox.depth() == 0
        assert pool.tracker.state(item_id) == "delivered"
        snap = pool.snapshot()
        assert next(iter(snap["binds"].values()))["late_saved"] == 1
    assert mt_texts(sim, A) == ["late but taken"]  # once: no retry was written
    assert sim.smsc.submitted == 1


async def test_answer_later_than_the_grace_is_sent_again_and_counted(
    sim: SimulatorController,
) -> None:
    """The answer comes after the link forgot the request: the retry went out, so the handset
    gets the SMS twice. That duplicate is counted as a resent unanswered part."""
    async with late_pool(sim, late_grace=0.05) as pool:
        assert await pool.sessions[0].wait_bound(5)
        sender, link = pool.senders[0], pool.sessions[0].tx
        sender.retry_base = 0.05
        sim.faults.update(delay=0.8)
        await pool.outbox.put(A, "twice", {"channel": "sms"})
        await wait_for(lambda: link.stats.timeouts == 1)
        sim.faults.update(delay=0.0)  # the retry is answered at once
        await wait_for(lambda: sender.sent == 1 and len(mt_texts(sim, A)) == 2)
        assert sender.late_saved == 0 and sender.retried == 1 and sender.resent_unanswered == 1
        assert link.stats.late_accepted == 0
    texts = mt_texts(sim, A)
    assert texts == ["twice", "twice"]
    assert len(texts) - 1 <= sender.resent_unanswered


async def test_multipart_late_ok_for_some_parts_resends_only_the_rest(smsc: MiniSmsc) -> None:
    """Parts 1 and 2 are answered late, part 3 never: only part 3 goes again, and the item is
    sent with the late ids of 1 and 2 and the new id of 3."""
    first_attempt = 3

    async def hold_first_attempt(client: Client, pdu: Pdu) -> int | None:
        return None if len(smsc.submits) <= first_attempt else 0

    smsc.submit_hook = hold_first_attempt
    outbox = MemoryOutbox()
    tracker = DeliveryTracker()
    # enquire_link every 0.05 s: the SMSC keeps answering, so three timeouts in a row are a
    # slow SMSC, not a dead link (a silent one would be dropped and its late answers lost)
    link_profile = smsc.profile(response_timeout=0.2, window=8, enquire_link=0.05)
    session = SmppSession(link_profile, late_grace=0.5)
    sender = OutboxSender(outbox, session, tracker=tracker, retry_base=0.05)
    async with session:
        assert await session.wait_bound(5)
        [item_id] = await outbox.put(A, "x" * 400, {"channel": "sms"})  # 3 GSM-7 parts
        draining = asyncio.create_task(sender.drain_once(10))
        await wait_for(lambda: session.tx.stats.timeouts == first_attempt)
        late = smsc.held[:2]
        for client, pdu in late:  # answered after the timeout, within the grace
            smsc.accept(client, pdu)
        await draining
        assert sender.sent == 1 and await outbox.depth() == 0
    assert len(smsc.submits) == 4
    assert smsc.submits[3].get("short_message") == smsc.submits[2].get("short_message")
    assert sender.late_saved == 2 and sender.retried == 1 and sender.resent_unanswered == 1
    by_pdu = {id(pdu): mid for mid, pdu in smsc.accepted.items()}
    expected = [by_pdu[id(smsc.submits[0])], by_pdu[id(smsc.submits[1])]]
    expected.append(by_pdu[id(smsc.submits[3])])
    assert tracker.part_states(item_id) == ["submitted"] * 3
    record = tracker._messages[item_id]
    assert [tracker._parts.get(mid) for mid in expected] == [(record, i) for i in range(3)]


async def test_a_lost_connection_releases_the_held_retry_at_once(smsc: MiniSmsc) -> None:
    """A late answer can only come on the connection that carried the request: when it closes,
    the held item is retried without waiting out a (here very long) grace."""

    async def hold_first(client: Client, pdu: Pdu) -> int | None:
        return None if len(smsc.submits) == 1 else 0

    smsc.submit_hook = hold_first
    outbox = MemoryOutbox()
    session = SmppSession(smsc.profile(response_timeout=0.2), late_grace=60.0, backoff_base=0.05)
    sender = OutboxSender(outbox, session, retry_base=0.05)
    async with session:
        assert await session.wait_bound(5)
        await outbox.put(A, "again", {"channel": "sms"})
        sender.start()
        await wait_for(lambda: session.tx.stats.timeouts == 1)
        await smsc.drop_all()
        await wait_for(lambda: sender.sent == 1, 10)  # far below the 60 s grace
        await sender.stop()
    # retried may be 2: taken again while the link was still down (not sent: not a try)
    assert sender.sent == 1 and sender.retried >= 1 and sender.resent_unanswered == 1
    assert [p.get("short_message") for p in smsc.submits] == [b"again", b"again"]
