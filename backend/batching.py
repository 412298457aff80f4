"""The bookkeeping of "the calls of one event-loop tick, sent as one batch".

Several hot paths coalesce what many turns ask in the same tick (Redis script calls, PostgreSQL
reads, outbox writes); each keeps its own idea of a batch, and shares these two pieces: when a
flush runs and which tasks it left running (:class:`TickFlush`), and how a failed batch reaches
every caller waiting on it (:func:`fail_all`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any


class TickFlush:
    """Runs ``flush`` once in the next tick however many calls :meth:`request` it in this one,
    and keeps the tasks the flush :meth:`spawn` s until they end."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._scheduled = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def request(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        self._flush()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self) -> None:
        """Until the batches in flight ended (their callers have their answers)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def fail_all(waiting: Iterable[asyncio.Future[Any]], exc: BaseException) -> None:
    """Give ``exc`` to every caller still waiting on the failed batch; raise it again when it is
    no ordinary error (cancellation, interrupt), so the task that met it stops too."""
    for future in waiting:
        if not future.done():
            future.set_exception(exc)
    if not isinstance(exc, Exception):
        raise exc
