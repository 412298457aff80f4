"""gateway.loop_lag: a loop held by a blocking call shows as one late wake-up of that length."""

from __future__ import annotations

import asyncio
import time

from gateway.loop_lag import probe_loop_lag


async def test_a_held_loop_shows_as_lag() -> None:
    seen: list[float] = []
    wanted = [3]  # wake-ups to wait for
    arrived = asyncio.Event()

    def observe(lag: float) -> None:
        seen.append(lag)
        if len(seen) >= wanted[0]:
            arrived.set()

    probe = asyncio.create_task(probe_loop_lag(observe, interval=0.01))
    try:
        await asyncio.wait_for(arrived.wait(), 5)  # a few free wake-ups first
        arrived.clear()
        wanted[0] = len(seen) + 1
        time.sleep(0.15)  # noqa: ASYNC251 - the point: a synchronous call holds the loop
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        probe.cancel()
    assert max(seen[:3]) < 0.1, seen
    assert max(seen) >= 0.12, seen
    assert all(lag >= 0 for lag in seen)
