"""Is the outbox moving? ``/healthz`` turns 503 when replies wait and none has left for a while.

A server can look healthy — binds up, stores answering — and still send nothing (the outbox's
consumer group gone with a Redis that lost its data, a sender stuck): replies pile up and no
check notices. The watch compares, at each look (a health check or a scrape), how many replies
this process's senders have finished (sent or failed for good) with the last look: while the
outbox is not empty and that number does not change, the outbox is stalled since the last
change. An empty outbox is never stalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class OutboxStalled(RuntimeError):
    """Replies wait in the outbox and none has left for longer than allowed."""


class OutboxWatch:
    def __init__(self, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after = stall_after
        self._clock = clock
        self._moved = -1
        self._since = clock()

    def observe(self, depth: int, moved: int) -> float:
        """Seconds the outbox has been stalled (0 when it is empty or moved since the last look).

        ``moved``: replies this process's senders finished so far (a running total)."""
        now = self._clock()
        if depth <= 0 or moved != self._moved:
            self._moved, self._since = moved, now
            return 0.0
        return now - self._since

    def check(self, depth: int, moved: int) -> float:
        """As :meth:`observe`; raises :class:`OutboxStalled` past ``stall_after``."""
        stalled = self.observe(depth, moved)
        self.verdict(depth, stalled)
        return stalled

    def verdict(self, depth: int, stalled: float) -> None:
        """Raises :class:`OutboxStalled` when ``stalled`` (from :meth:`observe`) is too long."""
        if stalled > self.stall_after:
            raise OutboxStalled(
                f"{depth} replies waiting, none sent for {stalled:.0f} s"
                f" (IDEA24_OUTBOX_STALL={self.stall_after:g})"
            )
