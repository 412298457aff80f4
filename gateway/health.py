"""What ``/healthz`` checks and what ``/metrics`` refreshes before each scrape.

Each health check answers for one part (database, dialog store, SMPP binds, outbox) and raises
when that part is down; the outbox also counts as down when replies wait and none has left for
``IDEA24_OUTBOX_STALL`` seconds (gateway/outbox/watch.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.components import Components

log = logging.getLogger(__name__)


def health_checks(c: Components) -> dict[str, Any]:
    async def database() -> str:
        assert c.backend is not None
        await c.backend.is_subscriber("0")  # one indexed read proves the database answers
        return "ok"

    async def store() -> str:
        assert c.store is not None
        await c.store.hit("health", 1.0)
        return "ok"

    async def smpp() -> dict[str, str]:
        assert c.pool is not None
        states = {s.profile.name: "bound" if s.bound else "down" for s in c.pool.sessions}
        if states and not any(v == "bound" for v in states.values()):
            raise ConnectionError("no SMPP bind is up")
        return states

    async def outbox() -> dict[str, float]:
        assert c.outbox is not None
        depth = await c.outbox.depth()
        stalled = c.outbox_watch.observe(depth, moved(c))
        c.metrics.outbox_stalled.set(stalled)
        c.outbox_watch.verdict(depth, stalled)
        return {"depth": depth, "stalled_s": round(stalled, 1)}

    return {"database": database, "store": store, "smpp": smpp, "outbox": outbox}


def moved(c: Components) -> int:
    """Replies this process's senders finished so far (sent, or failed for good)."""
    if c.pool is None:
        return 0
    return sum(b["sent"] + b["failed"] for b in c.pool.snapshot()["binds"].values())


#: How long a scrape waits for the outbox's depth (Redis / the database) before reporting NaN.
SCRAPE_DEPTH_TIMEOUT = 2.0


def scrape_outbox(c: Components) -> Callable[[], Awaitable[None]]:
    """Before each /metrics render: the outbox depth, or NaN when its store does not answer
    (a stale number would hide the very outage the gauge is watched for)."""

    async def refresh() -> None:
        if c.outbox is None:
            return
        try:
            depth = float(await asyncio.wait_for(c.outbox.depth(), SCRAPE_DEPTH_TIMEOUT))
        except Exception as exc:  # any store failure: the gauge says "unknown", the scrape works
            log.warning("outbox depth unreadable for /metrics: %s", type(exc).__name__)
            depth = math.nan
        c.metrics.outbox_depth.set(depth)
        if not math.isnan(depth):
            c.metrics.outbox_stalled.set(c.outbox_watch.observe(int(depth), moved(c)))

    return refresh
