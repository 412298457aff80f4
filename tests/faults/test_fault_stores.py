"""The shared stores fail under traffic: Redis restarted or hung (Redis as dialog store, dedup
and outbox), PostgreSQL connections killed. The SMSC keeps offering an MO the gateway could not
take (ESME_RX_T_APPN), as a real one does for hours; the driver re-offers what the simulator's
five quick tries gave up on (``resubmits``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simulator.controller import SimulatorController
from tests.conftest import kill_connections
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
