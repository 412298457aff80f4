"""How late the event loop runs what is due: the one number that shows a blocked loop.

Everything in a gateway process — SMPP reads, turns, the outbox, HTTP — shares one event loop; a
callback that holds it (a slow synchronous call, a burst of work) delays every subscriber at
once, and no per-turn timing says so. A task sleeps ``interval`` again and again and records how
much later than asked it woke up (``idea24_event_loop_lag_seconds``): near zero on a healthy
process, the length of the stall when something held the loop. Four wake-ups a second cost
nothing measurable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Seconds between probes.
INTERVAL = 0.25


async def probe_loop_lag(observe: Callable[[float], object], interval: float = INTERVAL) -> None:
    """Until cancelled: sleep ``interval``, ``observe`` how many seconds late the wake-up was."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))
