"""fsm.redis_wire against the real Redis: replies and error replies as redis-py gives them, a
script Redis lacks loaded on the way, a killed connection ridden out by the client's retry, a
cancelled call leaving no stale answer behind, and only a few connections kept from the pool."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.exceptions import ResponseError

from fsm.redis_wire import KEEP, RedisWire, wire_for

pytestmark = pytest.mark.redis


async def test_replies_and_error_replies(redis_client: Any, redis_prefix: str) -> None:
    wire = RedisWire(redis_client)
    key = f"{redis_prefix}:n"
    assert await wire.execute("SET", key, 41) == b"OK"
    assert await wire.execute("INCRBY", key, 1) == 42
    assert await wire.execute("GET", key) == b"42"
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await wire.execute("LPUSH", key, "x")
    assert await wire.execute("GET", key) == b"42", "an error reply leaves the connection usable"
    assert wire.calls == 4
    await wire.aclose()


async def test_a_script_redis_lacks_is_loaded_and_run(redis_client: Any, redis_prefix: str) -> None:
    wire = RedisWire(redis_client)
    script = redis_client.register_script(
        f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    )
    assert (await redis_client.script_exists(script.sha)) == [False]
    key = f"{redis_prefix}:n"
    assert await wire.evalsha(script, [key], [5]) == 5
    assert await wire.evalsha(script, [key], [5]) == 10
    assert int(await redis_client.get(key)) == 10, "each call ran exactly once"
    await wire.aclose()


async def test_a_killed_connection_is_reopened_by_the_clients_retry(
    redis_server_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.from_url(
        redis_server_url, retry=Retry(NoBackoff(), 3), retry_on_error=[RedisConnectionError]
    )
    wire = RedisWire(client)
    try:
        first = await wire.execute("CLIENT", "ID")
        assert await client.execute_command("CLIENT", "KILL", "ID", first) == 1
        assert await wire.execute("PING") == b"PONG"
        assert await wire.execute("CLIENT", "ID") != first, "on a new connection"
    finally:
        await wire.aclose()
        await client.aclose()


async def test_a_cancelled_call_leaves_no_answer_for_the_next(
    redis_client: Any, redis_prefix: str
) -> None:
    """Cancelled while Redis still owes its answer: the next call on the wire gets its own
    reply, not the late one of the cancelled call."""
    wire = RedisWire(redis_client, keep=1)
    key = f"{redis_prefix}:list"
    waiting = asyncio.create_task(wire.execute("BLPOP", key, 5))
    for _ in range(200):  # until Redis shows the call blocked
        info = await redis_client.info("clients")
        if info.get("blocked_clients", 0) >= 1:
            break
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await redis_client.rpush(key, "late")  # would be the BLPOP's answer on a reused socket
    assert await wire.execute("ECHO", "mine") == b"mine"
    assert await redis_client.lrange(key, 0, -1) == [b"late"], "nobody popped it"
    await wire.aclose()


async def test_keeps_a_few_connections_and_gives_the_rest_back(redis_client: Any) -> None:
    pool = redis_client.connection_pool
    wire = RedisWire(redis_client, keep=2)
    replies = await asyncio.gather(*(wire.execute("ECHO", str(i)) for i in range(12)))
    assert replies == [str(i).encode() for i in range(12)]
    assert len(pool._in_use_connections) == 2, "two kept, the others back in the pool"
    await wire.aclose()
    assert len(pool._in_use_connections) == 0
    assert KEEP >= 2


def test_no_wire_for_a_cluster_client() -> None:
    from redis.asyncio.cluster import RedisCluster

    class FakeCluster(RedisCluster):
        def __init__(self) -> None:  # no connection: only its type matters here
            pass

    assert wire_for(FakeCluster()) is None
