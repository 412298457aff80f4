"""Receipts across processes: two gateways on one SMSC account, Redis restarted under the relay.

The simulator hands each receipt to any bind of the submitting account (round-robin), as real
SMSCs do: without the relay (gateway/outbox/receipt_relay.py) about half of them stayed parked at
the gateway that did not send the message, and ``idea24_receipts_total`` missed them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.outbox.base import DeliveryTracker
from gateway.outbox.receipt_relay import ReceiptRelay, relay_client
from gateway.smpp.pdu import MessageState
from gateway.sms.events import ReceiptEvent
from gateway.sms.receipts import Receipt
from simulator.controller import SimulatorController
from tests.faults.harness import Driver, Workload, seed_subscribers, until, wait_replies
from tests.faults.processes import redis_process, serve_process

pytestmark = pytest.mark.redis


MetricSamples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _metrics(port: int) -> MetricSamples:
    """One served process's /metrics: (sample name, sorted labels) → value."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(metrics: MetricSamples, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.slow
async def test_two_served_processes_on_one_account_match_every_receipt(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str
) -> None:
    """Two ``idea24 serve`` on one Redis and one SMSC account: both take MO, both send replies
    from the shared outbox, and receipts go to either bind (with this lockstep workload the
    simulator's round-robin hands nearly every receipt to the process that did not send the
    reply: without the relay both counted 0 of 120). Every reply the handsets got ends
    ``delivered`` in ``idea24_message_outcomes_total`` of the process that sent it (default
    grace and interval, as served); ``idea24_receipts_total`` counts each receipt once, where
    it arrived."""
    workload = Workload.build(20, 6, cycles=0)
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    async with redis_process(tmp_path) as server:
        env = {"IDEA24_REDIS_URL": server.url}
        async with (
            serve_process(sim, sqlite_url, tmp_path / "one", env) as one,
            serve_process(sim, sqlite_url, tmp_path / "two", env) as two,
        ):
            await Driver(sim, workload).run(60.0)
            await wait_replies(sim, workload, within=60.0)
            replies = sum(
                1
                for m in workload.msisdns
                for x in sim.messages(m)
                if x.direction == "mt" and x.kind == "sms"
            )
            assert replies >= workload.turns
            deadline = time.monotonic() + 15.0
            while True:
                metrics = [await _metrics(p.http_port) for p in (one, two)]
                delivered = [
                    _value(m, "idea24_message_outcomes_total", outcome="delivered") for m in metrics
                ]
                if sum(delivered) >= replies or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert sum(delivered) == replies, (delivered, replies)
            parts = sum(
                len(x.message_ids)
                for m in workload.msisdns
                for x in sim.messages(m)
                if x.direction == "mt" and x.kind == "sms"
            )
            arrived = [_value(m, "idea24_receipts_total", state="delivered") for m in metrics]
            assert sum(arrived) == parts, (arrived, parts)  # one receipt per part, counted once
            relayed = "idea24_receipts_relayed_total"
            for m in metrics:
                assert _value(m, relayed, direction="in", outcome="matched") > 0  # both ways
                assert _value(m, relayed, direction="in", outcome="unmatched") == 0
                assert _value(m, relayed, direction="out", outcome="dropped") == 0


def _event(message_id: str) -> ReceiptEvent:
    state = MessageState.DELIVERED
    return ReceiptEvent(message_id, state.name, None, "48600000001", Receipt(message_id, state))


@pytest.mark.slow
async def test_redis_restarted_the_relay_resumes(tmp_path: Path) -> None:
    """Redis killed: the subscriptions are lost past the client's retries and come back with the
    relay's own back-off; what went stale meanwhile was dropped and counted, not kept."""
    fast = {"interval": 0.05, "grace": 0.05, "poll": 0.1, "backoff_base": 0.05, "backoff_cap": 0.2}
    async with redis_process(tmp_path) as server:
        a, b = DeliveryTracker(), DeliveryTracker()
        clients = [relay_client(server.url), relay_client(server.url)]
        relays = [
            ReceiptRelay(t, c, prefix="restart", **fast)
            for t, c in zip((a, b), clients, strict=True)
        ]
        try:
            for relay in relays:
                await relay.start()
            assert all([await r.wait_subscribed(5.0) for r in relays])
            a.sent("m0", "48600000001", ["c0"])
            b.receipt(_event("c0"))
            await until(lambda: a.state("m0") == "delivered")

            server.kill()
            await until(lambda: not any(r.subscribed for r in relays))
            b.receipt(_event("c1"))
            await until(lambda: b.relay_dropped == 1)
            assert b.parked == 0

            await server.start()
            assert all([await r.wait_subscribed(5.0) for r in relays])
            assert all(r.subscriptions >= 2 for r in relays)
            a.sent("m2", "48600000001", ["c2"])
            b.receipt(_event("c2"))
            await until(lambda: a.state("m2") == "delivered")
            assert (a.relayed_matched, b.relayed_out, b.relay_dropped) == (2, 2, 1)
        finally:
            for relay in relays:
                await relay.close()
            for client in clients:
                await client.aclose()
