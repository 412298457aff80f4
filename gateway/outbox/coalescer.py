"""Calls of one event-loop tick written as one batch (the Redis outbox's puts and finishes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from backend.batching import fail_all

A = TypeVar("A")
R = TypeVar("R")

#: Items per write at most (Lua's unpack() has a stack limit in the thousands).
BATCH_MOST = 256


class Coalescer(Generic[A, R]):
    """Calls made in the same event-loop tick go to Redis as one script call.

    Each caller awaits its own result, so it still returns only once its write is in Redis;
    the calls of a tick (one per turn, many turns in flight) share one round trip and one
    script run. One write runs at a time: calls made meanwhile form the next batch.
    """

    def __init__(self, write: Callable[[list[A]], Awaitable[list[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[A, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, args: Sequence[A]) -> list[R]:
        """Write ``args`` (kept in this order, with whatever else this tick brings)."""
        loop = asyncio.get_running_loop()
        results: list[asyncio.Future[R]] = []
        for arg in args:
            results.append(loop.create_future())
            self._pending.append((arg, results[-1]))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return [await result for result in results]

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # the calls of this tick join the batch
            batch, self._pending = self._pending[:BATCH_MOST], self._pending[BATCH_MOST:]
            try:
                results = await self._write([arg for arg, _ in batch])
            except BaseException as exc:
                fail_all((future for _, future in batch), exc)
                continue
            for (_, future), value in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(value)

    async def drain(self) -> None:
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task}, timeout=5.0)
