"""``idea24 serve --workers 2``: real worker processes on one port, one killed mid-traffic.

The supervisor restarts the killed worker; what it had taken from the outbox is taken back (at
the restart, or by the other worker after the lease), so the counts obey the same bounds as a
single process killed and started again (tests/faults/test_fault_crash.py): nothing missing,
repeats only among turns and submits in flight at the kill, money moved once. /metrics, on the
one shared port, sums both workers and labels each worker's binds; SIGTERM to the supervisor
drains both.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from gateway.outbox.redis import RedisOutbox
from simulator.controller import SimulatorController
from tests.faults.harness import (
    SHORT_CODE,
    Driver,
    Tally,
    Workload,
    compare,
    money_counts,
    seed_subscribers,
    until,
    wait_replies,
)
from tests.faults.processes import ServeProcess, redis_process
from tests.faults.test_fault_crash import assert_crash_bounds, in_flight

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        assert r.status == 200
        return await r.text()


def samples(text: str, name: str) -> dict[str, float]:
    """``labels → value`` of one metric's samples."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


async def test_two_workers_one_killed_nothing_lost_or_doubled(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str, fault_report: list[Tally]
) -> None:
    import redis.asyncio as aioredis

    workload = Workload.build(60, 10, cycles=1)
    await seed_subscribers(sqlite_url, len(workload.msisdns))
    async with redis_process(tmp_path) as redis_server:
        client = aioredis.from_url(redis_server.url)
        outbox = RedisOutbox(client)
        env = {"IDEA24_REDIS_URL": redis_server.url}
        try:
            served = ServeProcess(sim, sqlite_url, tmp_path, env, ["--workers", "2"])
            served.smsc += "&binds_per_worker=1&max_binds=2"
            try:
                await served.start()
                await until(lambda: len(sim.smsc.receivers(None, SHORT_CODE)) == 2)
                first = served.workers()
                assert len(first) == 2
                driver = Driver(sim, workload)
                sending = asyncio.create_task(driver.run(120.0))
                await driver.until_sent(workload.turns // 3)
                flying = in_flight(sim)
                os.kill(first[0], signal.SIGKILL)
                # Started again by the supervisor, bound again: two binds, a new pid.
                await until(lambda: len(served.workers()) == 2 and first[0] not in served.workers())
                await until(lambda: len(sim.smsc.receivers(None, SHORT_CODE)) == 2)
                await sending

                async def settled() -> bool:
                    return await outbox.depth() == 0

                got = await wait_replies(sim, workload, within=60.0, settled=settled)
                metrics = await scrape(served.http_port)
                assert served.proc is not None
                supervisor = served.proc
                supervisor.send_signal(signal.SIGTERM)
                status = await asyncio.to_thread(supervisor.wait, 30)
            finally:
                served.stop()
        finally:
            await client.aclose()
    tally = compare(Tally("SIGKILL one of 2 workers, Redis store and outbox"), workload, got)
    tally.charges, tally.audits = await money_counts(sqlite_url, workload.msisdns)
    tally.extra.update(in_flight_at_kill=flying)
    fault_report.append(tally)
    assert_crash_bounds(tally, flying, got, workload)
    assert tally.charges == tally.audits == tally.activations_expected, tally.line()
    # One endpoint for both workers: every MO counted, by whichever worker took it.
    received = samples(metrics, "idea24_messages_in_total")
    assert sum(received.values()) >= workload.turns, received
    bound = samples(metrics, "idea24_smpp_bind_up")
    assert sorted(re.findall(r'worker="(\d+)"', " ".join(bound))) == ["0", "1"], bound
    assert status == 0
    assert "exited with status -9; starting it again" in served.log()


async def test_a_worker_that_cannot_start_stops_the_supervisor(
    sim: SimulatorController, tmp_path: Path
) -> None:
    """A configuration every worker refuses (here a Redis nobody listens on): the workers say
    why, the supervisor exits 2 instead of restarting them for ever."""
    from tests.conftest import free_port

    env = {"IDEA24_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    served = ServeProcess(sim, f"sqlite:///{tmp_path}/w.db", tmp_path, env, ["--workers", "2"])
    try:
        with pytest.raises(AssertionError, match="exited"):
            await served.start(within=60.0)
    finally:
        served.stop()
    assert served.proc is not None and served.proc.returncode == 2
    assert "IDEA24_REDIS_URL: cannot reach" in served.log()
    assert "starting it again" not in served.log()
