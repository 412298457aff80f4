"""Redis Sentinel: the master killed under ~200 turns/s, the sessions, locks, rate limits,
outbox and receipt relay follow the failover to the promoted replica.

A private master, replica and three sentinels (tests/faults/processes.SentinelCluster; master
judged down after 1 s); the server is the whole app in this process on
``redis+sentinel://…/idea24/0``. Counted (tests/faults/failover.py): turns answered, lost,
doubled, money activations against charges, and the longest time no reply reached a handset.
Replication is asynchronous: what the master acknowledged and had not passed on when it died
(a dedup key, a session record, an outbox entry) is gone with it — so a turn in flight at the
kill may be lost or answered twice; the bound below is those turns.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from simulator.controller import SimulatorController
from tests.faults.failover import FailoverCount, FailoverLoad
from tests.faults.harness import gateway, money_counts, seed_subscribers, subscribers
from tests.faults.processes import sentinel_cluster

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: Turns a second offered, subscribers (each under the 60-a-minute rate limit), seconds driven.
RATE, HANDSETS, SECONDS = 200.0, 400, 12.0


# In about one run of four a handful of client sockets of the failover reach the garbage collector
# unclosed (ResourceWarning at teardown); where redis-py's Sentinel pool drops them is not found.
# The counts above do not depend on it; the warning is not turned into a failure here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_master_killed_service_follows_the_failover(
    sim: SimulatorController, tmp_path: Path, sqlite_url: str
) -> None:
    msisdns = subscribers(HANDSETS)
    await seed_subscribers(sqlite_url, HANDSETS)
    count = FailoverCount("Redis Sentinel, master SIGKILLed")
    async with (
        sentinel_cluster(tmp_path) as cluster,
        gateway(sim, sqlite_url, redis_url=cluster.url),
    ):
        promoted = 0.0

        async def kill() -> None:
            nonlocal promoted
            old = await cluster.kill_master()
            promoted = await cluster.until_promoted(old)

        load = FailoverLoad(sim, msisdns, RATE)
        await load.run(count, SECONDS, fault_after=3.0, fault=kill)
    count.charges, _audits = await money_counts(sqlite_url, msisdns)
    gc.collect()  # any such socket is reported here, under this test's filter, not in the next test
    print("\n" + count.line() + f" | sentinels promoted the replica after {promoted:.1f} s")
    in_flight = RATE * 0.5  # turns a handset had sent when the master died, generously
    assert count.doubled + count.lost <= in_flight, count.line()
    assert count.charges <= count.activations, count.line()
    # Service back within the sentinels' failover time + 2 s.
    assert count.outage_s <= promoted + 2.0, count.line()
    assert count.answered >= count.sent - in_flight, count.line()
