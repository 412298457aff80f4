"""The SMSC misbehaves while 2,000 MO turns flow: dropped connections, refused binds,
throttling, responses later than the timeout. Nothing may be lost or done twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from simulator.controller import SimulatorController
from tests.faults.harness import (
    Driver,
    Gateway,
    Tally,
    Workload,
    compare,
    gateway,
    money_counts,
    until,
    wait_replies,
)
from tests.faults.harness import seed_subscribers as seed_subs


@contextlib.asynccontextmanager
async def every(period: float, action: object) -> AsyncIterator[list[int]]:
    """Run ``action()`` every ``period`` seconds in the background; yields the count."""
    count = [0]

    async def loop() -> None:
        while True:
            await asyncio.sleep(period)
            action()  # type: ignore[operator]
            count[0] += 1

    task = asyncio.create_task(loop())
    try:
        yield count
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def connects(gw: Gateway) -> int:
    """How many times the gateway's one bind has connected."""
    return int(next(iter(gw.snapshot()["binds"].values()))["connects"])


async def run(
    name: str,
    sim: SimulatorController,
    gw: Gateway,
    workload: Workload,
    database_url: str,
    within: float = 90.0,
) -> Tally:
    driver = Driver(sim, workload)
    await driver.run(within)
    got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
    tally = compare(Tally(name), workload, got, gw.counter.turns)
    tally.charges, tally.audits = await money_counts(database_url, workload.msisdns)
    tally.extra["resubmits"] = driver.resubmits
    return tally


def assert_exact(tally: Tally, *, repeats_allowed: int = 0) -> None:
    """Every turn processed once, every reply delivered (repeats only as stated), money once,
    order kept."""
    assert tally.processed_once == tally.turns_sent, tally.line()
    assert tally.processed_twice == 0 and tally.not_processed == 0, tally.line()
    kinds = Counter(u.partition(":")[2][:50] for u in tally.unexpected).most_common(5)
    assert tally.missing == 0 and not tally.unexpected, (tally.line(), kinds)
    assert tally.delivered_repeated <= repeats_allowed, tally.line()
    assert tally.charges == tally.audits == tally.activations_expected, tally.line()
    assert not tally.order_broken, (tally.line(), tally.order_broken[:5])


async def test_connection_dropped_every_second(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """The SMSC cuts every connection four times a second (as a crashing SMSC would) while the
    traffic runs. (Once a second it was; the whole workload now takes ~2 s, which left one cut.)"""
    workload = Workload.build(100, 20)
    await seed_subs(sqlite_url, len(workload.msisdns))
    async with gateway(sim, sqlite_url) as gw:
        async with every(0.25, sim.drop_all) as drops:
            tally = await run("smsc drops every 0.25s", sim, gw, workload, sqlite_url)
        # The last cut may land as the workload ends: the reconnect after it is awaited too.
        await until(lambda: connects(gw) > min(drops[0], 2))
        snap = gw.snapshot()
    bind = next(iter(snap["binds"].values()))
    tally.extra.update(
        drops=drops[0],
        reconnects=bind["connects"] - 1,
        retried=bind["retried"],
        mo_duplicates_dropped=snap["inbound"]["duplicates"],
    )
    fault_report.append(tally)
    assert drops[0] >= 2 and bind["connects"] >= 3, tally.line()
    # A submit the SMSC took just before the cut may be sent again (SMPP cannot tell it from a
    # lost one): at most one repeat per drop, right after itself.
    assert_exact(tally, repeats_allowed=drops[0] * 32)


async def test_binds_refused_for_a_while(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """Twice during the stream the SMSC drops the link and refuses binds for 1.5 s."""
    workload = Workload.build(100, 10)
    await seed_subs(sqlite_url, len(workload.msisdns))
    async with gateway(sim, sqlite_url) as gw:
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(90.0))
        for mark in (workload.turns // 4, workload.turns // 2):
            await driver.until_sent(mark)
            sim.faults.update(refuse_binds_until=sim.smsc.now() + 1.5)
            sim.drop_all()
        await sending
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tally = compare(Tally("smsc refuses binds 2x1.5s"), workload, got, gw.counter.turns)
        snap = gw.snapshot()
        refused = gw.link_stat("bind_failures")
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    connects = next(iter(snap["binds"].values()))["connects"]
    tally.extra.update(binds_refused=refused, connects=connects)
    fault_report.append(tally)
    assert refused >= 2, tally.line()
    assert_exact(tally, repeats_allowed=2 * 32)


async def test_smsc_throttling(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """The SMSC takes 400 submits a second and answers ESME_RTHROTTLED above that."""
    workload = Workload.build(100, 20)
    await seed_subs(sqlite_url, len(workload.msisdns))
    sim.faults.update(throttle=400)
    async with gateway(sim, sqlite_url) as gw:
        tally = await run("smsc throttles at 400/s", sim, gw, workload, sqlite_url)
        session = gw.session
        tally.extra.update(
            pushbacks=session.pushbacks,
            rate_now=round(session.throttle.effective_rate, 1),
            submitted=sim.smsc.submitted,
        )
    fault_report.append(tally)
    assert session.pushbacks > 0, tally.line()
    assert_exact(tally)  # a refused submit was not taken: nothing is ever repeated


async def test_responses_later_than_the_timeout(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """For 2 s every SMSC response comes 1.5 s late, past the gateway's 1 s timeout."""
    workload = Workload.build(50, 10)
    await seed_subs(sqlite_url, len(workload.msisdns))
    async with gateway(sim, sqlite_url, profile={"response_timeout": 1.0}) as gw:
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(90.0))
        await driver.until_sent(workload.turns // 3)
        sim.faults.update(delay=1.5)
        await asyncio.sleep(2.0)
        sim.faults.update(delay=0.0)
        await sending
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tally = compare(Tally("smsc responses 1.5s late for 2s"), workload, got, gw.counter.turns)
        timeouts, late = gw.link_stat("timeouts"), gw.link_stat("late_responses")
        bind = next(iter(gw.snapshot()["binds"].values()))
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    tally.extra.update(
        timeouts=timeouts,
        late_responses=late,
        late_saved=bind["late_saved"],
        resent_unanswered=bind["resent_unanswered"],
        reconnects=bind["connects"] - 1,
    )
    fault_report.append(tally)
    assert timeouts > 0 and bind["late_saved"] > 0, tally.line()
    # The SMSC kept every submit whose response came late. The link reports a late answer
    # within its grace (2 x the timeout) and the sender, which held the retry, marks the reply
    # sent: no copy. A copy can only come from a part sent again without an answer (the grace
    # ran out, or the connection closed first), and each is counted.
    assert_exact(tally, repeats_allowed=bind["resent_unanswered"])
