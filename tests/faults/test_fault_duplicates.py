"""The SMSC repeats itself: every MO delivered twice; receipts doubled, late and out of order."""

from __future__ import annotations

import asyncio
import dataclasses
import random

from simulator.controller import SimulatorController
from simulator.delivery import Delivery
from tests.faults.harness import (
    Driver,
    Tally,
    Workload,
    compare,
    gateway,
    money_counts,
    seed_subscribers,
    wait_replies,
)
from tests.faults.test_fault_smsc import assert_exact


async def test_every_mo_delivered_twice(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """``duplicate_mo``: each MO PDU reaches the gateway twice, back to back, each answered in
    time on a live connection. Nothing in the SMPP exchange tells that from a subscriber sending
    the same text twice, so both are answered; the pending-change rules keep every change single
    (the second ``TAK`` finds nothing pending) — 0 doubled changes, every turn answered."""
    workload = Workload.build(100, 20)
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    sim.faults.update(duplicate_mo=True)
    async with gateway(sim, sqlite_url) as gw:
        await Driver(sim, workload).run(90.0)
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tally = compare(Tally("every MO delivered twice"), workload, got, gw.counter.turns)
        dropped = gw.snapshot()["inbound"]["duplicates"]
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    tally.extra.update(mo_pdus=2 * workload.turns, duplicates_dropped=dropped)
    fault_report.append(tally)
    assert tally.missing == 0 and tally.not_processed == 0, tally.line()
    assert tally.charges == tally.audits == tally.activations_expected, tally.line()


async def test_receipts_doubled_late_and_out_of_order(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """Every receipt comes twice; a third before the submit_sm_resp, the rest up to 0.3 s late
    in random order. Each reply is counted delivered once and no receipt becomes a turn."""
    workload = Workload.build(50, 20)
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    rng = random.Random(9)
    sim.handler.receipt_delay = lambda pdu: rng.choice((0.0, 0.05, 0.1, 0.3))  # type: ignore[method-assign]
    smsc = sim.smsc
    route, queue = smsc.route, smsc.queue_receipt
    doubled = [0]

    def copy(delivery: Delivery) -> Delivery | None:
        if delivery.receipt is None:
            return None
        doubled[0] += 1
        return dataclasses.replace(delivery, done=None, attempts=0)

    def route_twice(delivery: Delivery) -> None:
        route(delivery)
        if (again := copy(delivery)) is not None:
            route(again)

    def queue_twice(delivery: Delivery) -> None:
        queue(delivery)
        if (again := copy(delivery)) is not None:
            queue(again)

    # Receipts go out through these two (delayed ones through route): each is sent twice.
    smsc.route = route_twice  # type: ignore[method-assign]
    smsc.queue_receipt = queue_twice  # type: ignore[method-assign,assignment]
    async with gateway(sim, sqlite_url) as gw:
        driver = Driver(sim, workload)
        sim.faults.update(receipt_first=True)
        await driver.run(90.0)
        sim.faults.update(receipt_first=False)
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tracker = gw.components.pool.tracker  # type: ignore[union-attr]
        parts = sim.smsc.submitted
        for _ in range(50):  # the last receipts are up to 0.3 s behind
            if tracker.receipts >= 2 * parts:
                break
            await asyncio.sleep(0.1)
        tally = compare(
            Tally("receipts doubled, late, out of order"), workload, got, gw.counter.turns
        )
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    tally.extra.update(
        parts=parts,
        receipts=tracker.receipts,
        doubled=doubled[0],
        early=tracker.early,
        messages_delivered=tracker.delivered,
        messages_failed=tracker.failed,
        parked=tracker.parked,
    )
    fault_report.append(tally)
    assert_exact(tally)
    assert tracker.receipts == 2 * parts and doubled[0] == parts, tally.line()
    assert tracker.delivered == tracker.submitted == workload.turns, tally.line()
    assert tracker.failed == 0 and tracker.parked == 0, tally.line()
