"""backend.batching: one flush per tick, tracked tasks, and a failed batch reaching every caller."""

from __future__ import annotations

import asyncio

import pytest

from backend.batching import TickFlush, fail_all


async def test_many_requests_in_a_tick_flush_once_in_the_next() -> None:
    flushes: list[int] = []
    done = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0)
        done.set()

    def flush() -> None:
        flushes.append(1)
        tick.spawn(work())

    tick = TickFlush(flush)
    for _ in range(5):
        tick.request()
    assert flushes == [], "nothing runs in the tick that asked"
    await asyncio.sleep(0)
    assert flushes == [1]
    await tick.wait()
    assert done.is_set(), "wait() lets the spawned work finish"
    tick.request()
    await asyncio.sleep(0)
    assert flushes == [1, 1], "a later tick flushes again"


async def test_fail_all_answers_the_waiting_and_stops_on_cancellation() -> None:
    loop = asyncio.get_running_loop()
    waiting = [loop.create_future() for _ in range(3)]
    waiting[1].set_result("already answered")
    fail_all(waiting, ValueError("down"))
    assert isinstance(waiting[0].exception(), ValueError)
    assert waiting[1].result() == "already answered"
    assert isinstance(waiting[2].exception(), ValueError)
    others = [loop.create_future()]
    with pytest.raises(asyncio.CancelledError):
        fail_all(others, asyncio.CancelledError())
    assert others[0].done()
