"""The store fixture: every store test runs on MemoryStore and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from fsm.redis_store import RedisStore
from fsm.store import DialogStore, MemoryStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StoreCase:
    store: DialogStore
    #: Let ``seconds`` pass: the memory store's clock jumps, Redis really waits (keep it short).
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def case(request: pytest.FixtureRequest) -> AsyncIterator[StoreCase]:
    if request.param == "memory":
        clock = FakeClock()

        async def jump(seconds: float) -> None:
            clock.now += seconds

        yield StoreCase(MemoryStore("t", clock=clock), jump)
        return
    import redis.asyncio as aioredis

    url = request.getfixturevalue("redis_server_url")
    prefix = request.getfixturevalue("redis_prefix")

    async def wait(seconds: float) -> None:
        await asyncio.sleep(seconds)

    client = aioredis.from_url(url)
    try:
        yield StoreCase(RedisStore(client, prefix), wait)
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()
