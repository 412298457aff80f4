"""Throughput control for one bind: a token bucket counting parts, slowed by the SMSC's pushback.

Theory of operation: every submit_sm (each part of a long message) takes one token. The bucket
refills at ``rate`` tokens/s up to ``burst``. When the SMSC answers ESME_RTHROTTLED or
ESME_RMSGQFUL the throttle *backs off*: it halves the effective rate (never below ``floor``)
and pauses sending for a delay that doubles with each consecutive pushback (with jitter; the
answers to requests already in flight when a pause began do not double it again), so a
congested SMSC sees fewer requests, not a retry storm. Successful responses restore the rate
additively (AIMD, like TCP). The object belongs to the bind, not to one TCP connection, so a
reconnect does not reset it: an SMSC that throttled us a second ago still does.

Clock and sleep are injected so tests drive time without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Backoff:
    """Exponential back-off with full jitter: ``base * 2**n`` capped, drawn from [d/2, d]."""

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * (2**self.failures))
        self.failures = min(self.failures + 1, 32)
        return float(delay / 2 + self._rng.random() * delay / 2)

    def reset(self) -> None:
        self.failures = 0


class Throttle:
    """Per-bind rate limit in parts/s (``rate`` 0 = unlimited) plus SMSC-driven back-off."""

    def __init__(
        self,
        rate: float = 0.0,
        *,
        burst: float | None = None,
        floor: float = 1.0,
        pause_base: float = 0.2,
        pause_cap: float = 10.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.rate = rate
        self.effective_rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.floor = floor
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._pause = Backoff(pause_base, pause_cap, rng)
        self._lock = asyncio.Lock()
        #: Counters for metrics: how often the SMSC pushed back, how long we waited in total.
        self.pushbacks = 0
        self.waited = 0.0

    @property
    def unlimited(self) -> bool:
        """No rate set and no pause: :meth:`acquire` would return at once (hot-path check)."""
        return self.effective_rate <= 0 and self._paused_until == 0.0

    def _refill(self, now: float) -> None:
        if self.effective_rate > 0:
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.burst, self._tokens + elapsed * self.effective_rate)
        self._updated = now

    def delay_for(self, parts: int = 1) -> float:
        """Seconds until ``parts`` tokens are free (0 = go now). Does not take them."""
        now = self._clock()
        wait = max(0.0, self._paused_until - now)
        if self.effective_rate <= 0:
            return wait
        self._refill(now)
        need = min(float(parts), self.burst) - self._tokens
        if need > 0:
            wait = max(wait, need / self.effective_rate)
        return wait

    async def acquire(self, parts: int = 1) -> None:
        """Wait until ``parts`` may be sent, then take their tokens (FIFO among waiters)."""
        if self.unlimited:
            return
        async with self._lock:
            while True:
                wait = self.delay_for(parts)
                if wait <= 0:
                    break
                self.waited += wait
                await self._sleep(wait)
            if self.effective_rate > 0:
                self._tokens -= parts

    def pushback(self) -> float:
        """The SMSC said throttled / queue full: slow down. Returns the pause in seconds."""
        self.pushbacks += 1
        now = self._clock()
        if now < self._paused_until:
            # Answers to requests sent before the pause began: the same congestion, already
            # being handled; escalating per answer would turn one burst into a long stall.
            return self._paused_until - now
        delay = self._pause.next_delay()
        self._paused_until = now + delay
        if self.effective_rate > 0:
            self.effective_rate = max(self.floor, self.effective_rate / 2)
        return delay

    def success(self) -> None:
        """A submit went through: forget the pause streak, win back rate slowly."""
        self._pause.reset()
        if self._paused_until and self._paused_until <= self._clock():
            self._paused_until = 0.0
        if self.rate > 0 and self.effective_rate < self.rate:
            self.effective_rate = min(self.rate, self.effective_rate + max(1.0, self.rate / 20))
