"""``idea24 serve`` killed with SIGKILL mid-traffic and started again.

What may happen to the turns in flight at the kill (MO the gateway had read and not yet
acknowledged): the SMSC offers them again to the new process, which may process a turn the
dead one had finished — a repeated reply, right after itself. Nothing else: every other turn
is processed once, every queued reply leaves once (the outbox is in the database or Redis), and
money moves once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialogs.catalogue import texts
from gateway.outbox.base import Outbox
from simulator.controller import SimulatorController
from tests.faults.harness import (
    Driver,
    Tally,
    Workload,
    compare,
    money_counts,
    seed_subscribers,
    tag,
    wait_replies,
)
from tests.faults.processes import redis_process, serve_process


def in_flight(sim: SimulatorController) -> int:
    """deliver_sm the SMSC sent and the gateway has not acknowledged (may have processed)."""
    return sum(len(s.outstanding) for s in sim.smsc.sessions)


async def crash_run(
    name: str,
    sim: SimulatorController,
    tmp_path: Path,
    workload: Workload,
    database_url: str,
    outbox: Outbox,
    env: dict[str, str] | None = None,
) -> tuple[Tally, int, dict[str, list[str]]]:
    await seed_subscribers(database_url, len(workload.msisdns))
    async with serve_process(sim, database_url, tmp_path, env) as served:
        driver = Driver(sim, workload)
        sending = asyncio.create_task(driver.run(120.0))
        await driver.until_sent(workload.turns // 3)
        flying = in_flight(sim)
        served.kill()
        await served.start()
        await sending

        async def settled() -> bool:
            return await outbox.depth() == 0

        got = await wait_replies(sim, workload, within=60.0, settled=settled)
    tally = compare(Tally(name), workload, got)
    tally.charges, tally.audits = await money_counts(database_url, workload.msisdns)
    tally.extra.update(in_flight_at_kill=flying, starts=served.starts)
    return tally, flying, {m: list(tags) for m, tags in got.items()}


#: Submits the killed process may have had in flight (the bind's window in ServeProcess): the
#: SMSC took them, their submit_sm_resp died with the process, so they go again (SMPP's "at
#: least once", docs/reliability.md).
WINDOW = 32

#: What a confirmation processed by both processes answers the second time (its change was
#: done, its reply queued, the state saved; only the deliver_sm_resp died with the process).
#: The tag of the catalogue's "nothing to confirm" reply (a confirmation answered twice).
NOTHING_TO_CONFIRM = tag(texts("pl")("nothing_pending"))


def assert_crash_bounds(
    tally: Tally, flying: int, got: dict[str, list[str]], workload: Workload
) -> None:
    assert tally.missing == 0, (tally.line(), tally.unexpected[:8])
    # A turn in flight at the kill may have been processed by both processes: its reply (or,
    # for a confirmation, "nothing to confirm") comes twice; a submit in flight comes twice.
    # Nothing else does.
    assert all(u.endswith(":" + NOTHING_TO_CONFIRM) for u in tally.unexpected), tally.unexpected
    assert tally.delivered_repeated + len(tally.unexpected) <= flying + WINDOW, (
        tally.line(),
        tally.unexpected[:5],
    )
    # Order, with the second answers of confirmations set aside: everything the script expects
    # arrives in the script's order (consecutive repeats collapsed).
    broken = []
    for msisdn in tally.order_broken:
        tags = [t for t in got.get(msisdn, []) if t != NOTHING_TO_CONFIRM]
        expected = [t.expect for t in workload.scripts[msisdn]]
        if [t for i, t in enumerate(tags) if i == 0 or tags[i - 1] != t] != expected:
            broken.append(msisdn)
    assert not broken, (tally.line(), broken[:5])


async def test_sigkill_with_sqlite_outbox_and_memory_store(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """The embedded default: SQLite database and outbox, dialog state in memory. Only plain
    commands here (an open confirmation is dialog state: a crash forgets it, see
    docs/reliability.md)."""
    from backend.db import create_engine
    from gateway.outbox.sql import SqlOutbox

    workload = Workload.build(60, 10, cycles=0)
    engine = create_engine(sqlite_url)
    try:
        tally, flying, got = await crash_run(
            "SIGKILL, SQLite outbox, memory store",
            sim,
            tmp_path,
            workload,
            sqlite_url,
            SqlOutbox(engine),
        )
    finally:
        await engine.dispose()
    fault_report.append(tally)
    assert_crash_bounds(tally, flying, got, workload)


@pytest.mark.redis
async def test_sigkill_with_redis_store_and_outbox(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """Redis holds dialog state, dedup keys and the outbox: confirmations survive the kill and
    every activation is applied once."""
    import redis.asyncio as aioredis

    from gateway.outbox.redis import RedisOutbox

    workload = Workload.build(60, 10, cycles=1)
    async with redis_process(tmp_path) as redis_server:
        client = aioredis.from_url(redis_server.url)
        try:
            tally, flying, got = await crash_run(
                "SIGKILL, Redis store and outbox",
                sim,
                tmp_path,
                workload,
                sqlite_url,
                RedisOutbox(client),
                env={"IDEA24_REDIS_URL": redis_server.url},
            )
        finally:
            await client.aclose()
    fault_report.append(tally)
    assert_crash_bounds(tally, flying, got, workload)
    assert tally.charges == tally.audits == tally.activations_expected, tally.line()
