"""ReceiptRelay: a receipt that reached the wrong process is matched by the one that sent it.

Two trackers stand for two ``idea24 serve`` processes on one SMSC account; their relays talk
over a real Redis on a channel of this test's own prefix (parallel runs never cross).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.outbox.base import DeliveryTracker
from gateway.outbox.receipt_relay import ReceiptRelay, decode, encode, relay_client
from gateway.smpp.pdu import MessageState
from gateway.sms.events import ReceiptEvent
from gateway.sms.receipts import Receipt

MSISDN = "48600000001"
#: Small enough for a test to see several rounds a second.
FAST = {"interval": 0.05, "grace": 0.05, "poll": 0.1, "backoff_base": 0.05, "backoff_cap": 0.2}


def event(message_id: str, state: MessageState = MessageState.DELIVERED) -> ReceiptEvent:
    return ReceiptEvent(message_id, state.name, None, MSISDN, Receipt(message_id, state))


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


class Node:
    """One process's side: its tracker (final states in ``finals``; its counters are what
    /metrics exports) and its relay."""

    def __init__(self, url: str, prefix: str, name: str, **options: Any) -> None:
        self.finals: list[str] = []
        self.tracker = DeliveryTracker(
            on_state=lambda item, _msisdn, state: self.finals.append(f"{item}:{state}")
        )
        self.client = relay_client(url, client_name=f"{prefix}-{name}")
        self.relay = ReceiptRelay(
            self.tracker,
            self.client,
            prefix=prefix,
            **{**FAST, **options},
        )

    async def close(self) -> None:
        await self.relay.close()
        await self.client.aclose()


@asynccontextmanager
async def nodes(url: str, prefix: str, *names: str, **options: Any) -> AsyncIterator[list[Node]]:
    started = [Node(url, prefix, name, **options) for name in names]
    try:
        for node in started:
            await node.relay.start()
        for node in started:
            assert await node.relay.wait_subscribed(5.0)
        yield started
    finally:
        for node in started:
            await node.close()


# -- the wire format, no Redis ----------------------------------------------------------------


@pytest.mark.parametrize("state", list(MessageState))
def test_a_relayed_receipt_behaves_as_the_original(state: MessageState) -> None:
    original = ReceiptEvent("0A1b", state.name, "069", MSISDN, Receipt("0A1b", state, "069"))
    process, (copy,) = decode(encode("p1", [original]))
    assert process == "p1"
    assert (copy.message_id, copy.state, copy.err, copy.msisdn) == (
        "0A1b",
        state.name,
        "069",
        MSISDN,
    )
    assert copy.receipt.state is state
    assert copy.receipt.is_delivered == original.receipt.is_delivered
    assert copy.receipt.is_final == original.receipt.is_final


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"p": "x"}',
        b'{"p": 1, "r": []}',
        b'{"p": "x", "r": [["id", "NOPE", null, "1"]]}',
        b'{"p": "x", "r": [["id", "DELIVERED", null]]}',
        b'{"p": "x", "r": [[1, "DELIVERED", null, "1"]]}',
        b'{"p": "x", "r": ["abcd"]}',
    ],
)
def test_anything_else_on_the_channel_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


async def test_own_messages_are_ignored_and_others_applied(unused_port: int) -> None:
    client = relay_client(f"redis://127.0.0.1:{unused_port}/0")  # never connected here
    tracker = DeliveryTracker()
    relay = ReceiptRelay(tracker, client, process="me")
    tracker.sent("m1", MSISDN, ["abc"])
    assert relay.receive(encode("me", [event("abc")])) == 0
    assert tracker.state("m1") == "submitted"
    assert relay.receive(encode("mee", [event("abc")])) == 1  # not a prefix match
    assert tracker.state("m1") == "delivered"
    assert relay.receive(b"junk") == 0 and relay.malformed == 1
    await client.aclose()


# -- two processes over a real Redis -----------------------------------------------------------


@pytest.mark.redis
async def test_a_receipt_at_the_wrong_process_reaches_the_sender(
    redis_server_url: str, redis_prefix: str
) -> None:
    async with nodes(redis_server_url, redis_prefix, "a", "b") as (a, b):
        a.tracker.sent("m1", MSISDN, ["5C1B6DAF", "a2"])
        a.tracker.sent("m2", MSISDN, ["a3"])
        assert not b.tracker.receipt(event("1545301423"))  # decimal spelling of 5C1B6DAF
        assert not b.tracker.receipt(event("A2"))
        assert not b.tracker.receipt(event("a3", MessageState.UNDELIVERABLE))
        assert b.tracker.parked == 3
        await until(lambda: a.tracker.state("m1") == "delivered")
        await until(lambda: a.tracker.state("m2") == "failed")
        assert sorted(a.finals) == ["m1:delivered", "m2:failed"] and b.finals == []
        assert b.tracker.parked == 0 and a.tracker.parked == 0
        assert b.tracker.relayed_out == 3
        assert a.tracker.relayed_matched == 3
        assert (a.tracker.delivered, a.tracker.failed, a.tracker.receipts) == (1, 1, 0)

        # A receipt nobody sent: A tries it, counts it unmatched and keeps nothing. B gets its
        # own messages back (in order) and ignores them: its only unmatched is this one of A.
        assert not b.tracker.receipt(event("dead01"))
        await until(lambda: a.tracker.relayed_unmatched == 1)
        assert a.tracker.parked == 0 and b.tracker.parked == 0
        assert not a.tracker.receipt(event("dead02"))
        await until(lambda: b.tracker.relayed_unmatched == 1)
        assert (b.tracker.relayed_matched, b.tracker.relayed_unmatched) == (0, 1)
        assert (a.tracker.relayed_matched, a.tracker.relayed_unmatched) == (3, 1)
        assert a.tracker.relay_dropped == b.tracker.relay_dropped == 0


@pytest.mark.redis
async def test_a_receipt_that_matches_locally_within_the_grace_never_travels(
    redis_server_url: str, redis_prefix: str
) -> None:
    async with nodes(redis_server_url, redis_prefix, "a", "b", grace=0.5) as (a, b):
        assert not a.tracker.receipt(event("e1"))  # a few ms before our own submit_sm_resp
        await asyncio.sleep(0.1)
        a.tracker.sent("m1", MSISDN, ["e1"])
        assert a.tracker.state("m1") == "delivered" and a.tracker.early == 1
        await asyncio.sleep(0.7)  # past the grace: nothing left to relay
        assert a.tracker.relayed_out == 0 and b.tracker.relayed_unmatched == 0


@pytest.mark.redis
async def test_closing_hands_on_what_is_still_parked(
    redis_server_url: str, redis_prefix: str
) -> None:
    """A process going away publishes its parked receipts at once, grace or not."""
    async with nodes(redis_server_url, redis_prefix, "a", "b", grace=60.0) as (a, b):
        a.tracker.sent("m1", MSISDN, ["d1"])
        b.tracker.receipt(event("d1"))
        await asyncio.sleep(0.2)
        assert b.tracker.parked == 1 and b.tracker.relayed_out == 0  # within its grace
        await b.close()
        assert b.tracker.parked == 0 and b.tracker.relayed_out == 1
        await until(lambda: a.tracker.state("m1") == "delivered")


async def _kill_clients(url: str, name_prefix: str) -> int:
    """CLIENT KILL every pub/sub connection whose name starts with ``name_prefix`` (only this
    test's: other runs on the same Redis keep theirs)."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(url)
    try:
        killed = 0
        for client in await admin.client_list(_type="pubsub"):
            if client.get("name", "").startswith(name_prefix):
                killed += await admin.execute_command("CLIENT", "KILL", "ID", client["id"])
        return killed
    finally:
        await admin.aclose()


async def _subscribers(url: str, channel: str) -> int:
    import redis.asyncio as aioredis

    admin = aioredis.from_url(url)
    try:
        ((_, count),) = await admin.pubsub_numsub(channel)
        return int(count)
    finally:
        await admin.aclose()


@pytest.mark.redis
async def test_the_relay_survives_its_connections_being_killed(
    redis_server_url: str, redis_prefix: str
) -> None:
    async with nodes(redis_server_url, redis_prefix, "a", "b") as (a, b):
        for round_ in range(3):
            assert await _kill_clients(redis_server_url, redis_prefix) == 2
            deadline = time.monotonic() + 5.0
            while await _subscribers(redis_server_url, a.relay.channel) < 2:
                assert time.monotonic() < deadline, "did not subscribe again"
                await asyncio.sleep(0.02)
            a.tracker.sent(f"m{round_}", MSISDN, [f"f{round_}"])
            b.tracker.receipt(event(f"f{round_}"))
            await until(lambda r=round_: a.tracker.state(f"m{r}") == "delivered")
        assert a.tracker.relayed_matched == 3


@pytest.mark.redis
async def test_redis_unreachable_drops_and_counts_without_piling_up(
    caplog: pytest.LogCaptureFixture, unused_port: int
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.outbox.receipt_relay")
    url = f"redis://127.0.0.1:{unused_port}/0"  # nothing listens there
    node = Node(url, "unreachable", "a")
    await node.relay.start()
    try:
        for i in range(5):
            node.tracker.receipt(event(f"{i:x}0", MessageState.DELIVERED))
            await asyncio.sleep(0.06)
        await until(lambda: node.tracker.relay_dropped == 5)
        assert node.tracker.parked == 0
        assert not node.relay.subscribed
    finally:
        async with asyncio.timeout(5.0):
            await node.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # One warning per outage and side, not one per try; no subscriber number in any of them.
    assert sorted(r.getMessage().split(",")[0] for r in warnings) == [
        "receipt relay: cannot publish",
        "receipt relay: subscription lost",
    ]
    assert not any(MSISDN in r.getMessage() for r in caplog.records)
