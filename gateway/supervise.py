"""No task dies silently: background loops are restarted, one-off tasks are watched.

A task that raises and is never awaited only shows up as "Task exception was never retrieved"
at garbage collection, and whatever it did stops (a reply sender died that way when the process
ran out of file descriptors). :class:`Supervisor` runs a loop again after a crash (a short
pause in between), and retrieves the exception of a watched one-off task; either way the
crash is logged with its traceback the first time per task and exception type (a loop that
keeps failing the same way does not flood the log) and counted per task name
(``idea24_task_crashes_total{task}``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, restart_after: float = 1.0) -> None:
        self.restart_after = restart_after
        #: crashes by task name
        self.crashes: Counter[str] = Counter()
        self._logged: set[tuple[str, type[BaseException]]] = set()

    def crashed(self, name: str, exc: BaseException) -> None:
        self.crashes[name] += 1
        kind = (name, type(exc))
        if kind in self._logged:
            log.debug("task %s crashed again: %s", name, type(exc).__name__)
            return
        self._logged.add(kind)
        log.error("task %s crashed", name, exc_info=exc)

    async def forever(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` until it returns (or is cancelled), again after each crash."""
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a crash of any kind: counted, logged once, restarted
                self.crashed(name, exc)
            await asyncio.sleep(self.restart_after)

    def watch(
        self,
        task: asyncio.Task[Any],
        name: str,
        on_crash: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Retrieve ``task``'s exception when it ends: counted, logged once, handed to
        ``on_crash`` (to put right what the task left half done)."""

        def ended(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is None:
                return
            self.crashed(name, exc)
            if on_crash is not None:
                on_crash(exc)

        task.add_done_callback(ended)
