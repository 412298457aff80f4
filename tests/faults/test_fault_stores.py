"""The shared stores fail under traffic: Redis restarted or hung (Redis as dialog store, dedup
and outbox), PostgreSQL connections killed. The SMSC keeps offering an MO the gateway could not
take (ESME_RX_T_APPN), as a real one does for hours; the driver re-offers what the simulator's
five quick tries gave up on (``resubmits``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.health import health_checks
from gateway.outbox.watch import OutboxStalled, OutboxWatch
from simulator.controller import SimulatorController
from tests.conftest import kill_connections
from tests.faults.harness import (
    Driver,
    Gateway,
    Tally,
    Workload,
    compare,
    gateway,
    money_counts,
    replies_at_handsets,
    seed_subscribers,
    wait_replies,
)
from tests.faults.processes import redis_process
from tests.faults.test_fault_smsc import assert_exact


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["restart", "hang"])
async def test_redis_restarted_or_hung(
    sim: SimulatorController,
    tmp_path: Path,
    sqlite_url: str,
    fault_report: list[Tally],
    fault: str,
) -> None:
    """``restart``: SIGKILL, 1 s down, started again on its append-only file.
    ``hang``: SIGSTOP for 2 s (connections open, nothing answers), then SIGCONT."""
    workload = Workload.build(50, 12)
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    async with (
        redis_process(tmp_path) as redis_server,
        gateway(sim, sqlite_url, redis_url=redis_server.url) as gw,
    ):
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(120.0))
        await driver.until_sent(workload.turns // 3)
        if fault == "restart":
            redis_server.kill()
            await asyncio.sleep(1.0)
            await redis_server.start()
        else:
            redis_server.pause()
            await asyncio.sleep(2.0)
            redis_server.resume()
        await sending
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tally = compare(Tally(f"redis {fault}"), workload, got, gw.counter.turns)
        tally.extra.update(resubmits=driver.resubmits)
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    fault_report.append(tally)
    # A command Redis executed whose answer was cut off is sent again by the client's retry: a
    # reply queued twice (right after itself), at most one per subscriber with a turn in flight.
    assert_exact(tally, repeats_allowed=len(workload.msisdns))


async def _until_last_replies(
    sim: SimulatorController, workload: Workload, gw: Gateway, within: float = 30.0
) -> dict[str, list[str]]:
    """Until every handset has the reply to its last MO and nothing more is on its way (some
    earlier replies were lost with Redis: waiting for all of them would wait out ``within``)."""
    last = {m: s[-1].expect for m, s in workload.scripts.items()}
    async with asyncio.timeout(within):
        while True:
            got = replies_at_handsets(sim, workload.msisdns)
            if all(last[m] in got[m] for m in workload.msisdns) and await gw.settled():
                return got
            await asyncio.sleep(0.1)


async def test_healthz_says_503_when_the_outbox_stops_moving(
    sim: SimulatorController, sqlite_url: str
) -> None:
    """Replies wait and none leaves (here: the senders stopped) for longer than
    ``IDEA24_OUTBOX_STALL``: the outbox check fails (/healthz 503) and the gauge says how long."""
    await seed_subscribers(sqlite_url, 1)
    async with gateway(sim, sqlite_url) as gw:
        c = gw.components
        assert c.outbox is not None and c.pool is not None
        clock = [1000.0]
        c.outbox_watch = OutboxWatch(60.0, clock=lambda: clock[0])
        check = health_checks(c)["outbox"]
        assert await check() == {"depth": 0, "stalled_s": 0.0}
        for sender in c.pool.senders:
            await sender.stop()
        await c.outbox.put("48700000000", "stuck")
        assert (await check())["stalled_s"] == 0.0
        clock[0] += 59
        assert await check() == {"depth": 1, "stalled_s": 59.0}
        clock[0] += 2
        with pytest.raises(OutboxStalled, match="1 replies waiting, none sent for 61 s"):
            await check()
        assert c.metrics.outbox_stalled._value.get() == 61.0


#: The harness's SMPP window: replies being sent at one moment, at most.
WINDOW = 32


@pytest.mark.redis
async def test_redis_that_forgot_everything(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """A Redis without persistence is SIGKILLed under load and started again empty: the outbox's
    stream and consumer group are gone. Replies must flow again; only those queued before the
    loss may be missing, and the server counts them (``idea24_outbox_lost_total``)."""
    workload = Workload.build(50, 12, cycles=0)  # unknown words only: no session to lose
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    async with (
        redis_process(tmp_path, persist=False) as redis_server,
        gateway(sim, sqlite_url, redis_url=redis_server.url) as gw,
    ):
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(120.0))
        await driver.until_sent(workload.turns // 3)
        redis_server.kill()
        await asyncio.sleep(0.5)
        await redis_server.start()
        await sending
        got = await _until_last_replies(sim, workload, gw)
        tally = compare(Tally("redis restarted empty"), workload, got, gw.counter.turns)
        outbox = gw.components.outbox
        lost = int(getattr(outbox, "lost", -1))
        recreated = int(getattr(outbox, "recreated", -1))
        exported = gw.components.metrics.render().decode()
        assert f"idea24_outbox_lost_total {float(lost)}" in exported
        tally.extra.update(resubmits=driver.resubmits, lost_counted=lost, recreated=recreated)
    fault_report.append(tally)
    assert recreated == 1, tally.line()
    # Every MO sent after the loss was answered: the last turn of each subscriber is.
    last = {m: s[-1].expect for m, s in workload.scripts.items()}
    unanswered_last = [m for m in workload.msisdns if last[m] not in got[m]]
    assert not unanswered_last, (tally.line(), unanswered_last[:5])
    # Only replies queued before the loss are missing, and they were counted: exactly, but for
    # those whose send was under way at the loss (at most a window's worth).
    assert 0 < lost <= tally.missing <= lost + WINDOW, tally.line()
    assert tally.delivered_repeated <= len(workload.msisdns), tally.line()
    assert not tally.unexpected, tally.line()


@pytest.mark.postgres
async def test_postgres_connections_killed(
    sim: SimulatorController, own_postgres_url: str, fault_report: list[Tally]
) -> None:
    """Three times during the stream every connection to the database is terminated."""

    workload = Workload.build(50, 12)
    await seed_subscribers(own_postgres_url, len(workload.msisdns))
    database = own_postgres_url.rsplit("/", 1)[1]
    killed = 0
    async with gateway(sim, own_postgres_url) as gw:
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(120.0))
        for mark in (4, 2, 4 / 3):
            await driver.until_sent(int(workload.turns / mark))
            killed += await kill_connections(database)
        await sending
        got = await wait_replies(sim, workload, within=60.0, settled=gw.settled)
        tally = compare(Tally("postgres connections killed 3x"), workload, got, gw.counter.turns)
        tally.extra.update(connections_killed=killed, resubmits=driver.resubmits)
    tally.charges, tally.audits = await money_counts(own_postgres_url, workload.msisdns)
    fault_report.append(tally)
    assert killed >= 3, tally.line()
    assert_exact(tally)
