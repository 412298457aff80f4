"""Throttle and back-off with a fake clock: no waiting, exact arithmetic."""

from __future__ import annotations

import random

from gateway.esme.throttle import Backoff, Throttle


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def throttle(rate: float, t: FakeTime, **kw: float) -> Throttle:
    return Throttle(rate, clock=t.clock, sleep=t.sleep, rng=random.Random(1), **kw)


async def test_token_bucket_counts_parts() -> None:
    t = FakeTime()
    th = throttle(10.0, t, burst=5)
    for _ in range(5):
        await th.acquire()
    assert t.now == 0.0  # the burst is free
    await th.acquire(3)  # three more parts need 0.3 s of refill
    assert abs(t.now - 0.3) < 1e-9


async def test_unlimited_rate_never_waits() -> None:
    t = FakeTime()
    th = throttle(0.0, t)
    for _ in range(1000):
        await th.acquire()
    assert t.slept == []


async def test_pushback_pauses_halves_rate_and_recovers() -> None:
    t = FakeTime()
    th = throttle(100.0, t, pause_base=0.2)
    first = th.pushback()
    assert 0.1 <= first <= 0.2 and th.effective_rate == 50.0
    assert th.pushback() <= first  # an answer from the same burst does not escalate
    assert th.pushbacks == 2 and th.effective_rate == 50.0
    t.now += first
    second = th.pushback()  # still throttled after the pause: longer this time
    assert 0.2 <= second <= 0.4 and th.effective_rate == 25.0
    await th.acquire()
    assert t.now >= first + second - 1e-9
    for _ in range(20):
        th.success()
    assert th.effective_rate == 100.0


async def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(0.5, 4.0, random.Random(3))
    delays = [b.next_delay() for _ in range(6)]
    for n, d in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2**n)
        assert ceiling / 2 <= d <= ceiling
    b.reset()
    assert b.next_delay() <= 0.5
