"""fsm.redis_batch against the real Redis: a tick's script calls travel as one pipeline, each
caller still gets its own answer or its own error, and an unknown script is loaded on the way."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from redis.exceptions import ResponseError

from fsm.redis_batch import ScriptBatch

pytestmark = pytest.mark.redis

_ECHO_OR_FAIL = """
if ARGV[1] == 'bad' then return redis.error_reply('refused ' .. ARGV[1]) end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


def _fresh(client: Any, body: str) -> Any:
    """A script Redis has never seen (a unique comment gives it a new SHA): NOSCRIPT first."""
    return client.register_script(f"-- {secrets.token_hex(8)}\n{body}")


async def test_one_tick_of_calls_goes_as_one_pipeline(redis_client: Any, redis_prefix: str) -> None:
    batch = ScriptBatch(redis_client)
    script = redis_client.register_script(_ECHO_OR_FAIL)
    await redis_client.script_load(script.script)
    key = f"{redis_prefix}:n"
    results = await asyncio.gather(*(batch.call(script, [key], [f"v{i}"]) for i in range(50)))
    assert results == [f"v{i}".encode() for i in range(50)]
    assert batch.pipelines == 1 and batch.calls == 50
    assert int(await redis_client.get(key)) == 50, "every call ran exactly once"


async def test_each_caller_gets_its_own_error(redis_client: Any, redis_prefix: str) -> None:
    batch = ScriptBatch(redis_client)
    script = redis_client.register_script(_ECHO_OR_FAIL)
    key = f"{redis_prefix}:n"
    results = await asyncio.gather(
        batch.call(script, [key], ["a"]),
        batch.call(script, [key], ["bad"]),
        batch.call(script, [key], ["c"]),
        return_exceptions=True,
    )
    assert results[0] == b"a" and results[2] == b"c"
    assert isinstance(results[1], ResponseError) and "refused bad" in str(results[1])
    assert int(await redis_client.get(key)) == 2


async def test_unknown_script_is_loaded_and_run_once(redis_client: Any, redis_prefix: str) -> None:
    batch = ScriptBatch(redis_client)
    known = redis_client.register_script(_ECHO_OR_FAIL)
    await redis_client.script_load(known.script)
    fresh = _fresh(redis_client, _ECHO_OR_FAIL)
    assert (await redis_client.script_exists(fresh.sha)) == [False]
    k1, k2 = f"{redis_prefix}:known", f"{redis_prefix}:fresh"
    results = await asyncio.gather(
        *(batch.call(fresh, [k2], [f"f{i}"]) for i in range(5)),
        *(batch.call(known, [k1], [f"k{i}"]) for i in range(5)),
    )
    assert results == [f"f{i}".encode() for i in range(5)] + [f"k{i}".encode() for i in range(5)]
    assert int(await redis_client.get(k1)) == 5 and int(await redis_client.get(k2)) == 5
    assert batch.pipelines == 2, "the first pipeline, then only the calls that met NOSCRIPT"


async def test_a_cancelled_caller_leaves_the_others_answered(
    redis_client: Any, redis_prefix: str
) -> None:
    batch = ScriptBatch(redis_client)
    script = redis_client.register_script(_ECHO_OR_FAIL)
    key = f"{redis_prefix}:n"
    tasks = [asyncio.create_task(batch.call(script, [key], [f"v{i}"])) for i in range(10)]
    await asyncio.sleep(0)  # all queued; the pipeline is on its way
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert [d for i, d in enumerate(done) if i != 3] == [
        f"v{i}".encode() for i in range(10) if i != 3
    ]
    await batch.aclose()


async def test_a_lost_connection_fails_every_call_of_the_batch(redis_prefix: str) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    # Nobody listens on port 1; no retries, so the error comes at once.
    client = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    batch = ScriptBatch(client)
    script = client.register_script(_ECHO_OR_FAIL)
    results = await asyncio.gather(
        *(batch.call(script, [f"{redis_prefix}:n"], ["x"]) for i in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, RedisConnectionError) for r in results), results
    await client.aclose()


async def test_a_lone_call_goes_as_a_plain_evalsha(redis_client: Any, redis_prefix: str) -> None:
    """At low load a tick holds one call: no pipeline (it cost ~75 µs more), and a script
    Redis does not know is still loaded on the way; its error still reaches its caller."""
    batch = ScriptBatch(redis_client)
    fresh = _fresh(redis_client, _ECHO_OR_FAIL)
    key = f"{redis_prefix}:n"
    assert await batch.call(fresh, [key], ["solo"]) == b"solo"
    with pytest.raises(ResponseError, match="refused bad"):
        await batch.call(fresh, [key], ["bad"])
    assert batch.pipelines == 0 and batch.calls == 2
    assert int(await redis_client.get(key)) == 1


async def test_registered_scripts_of_one_tick_go_as_one_script_call(
    redis_client: Any, redis_prefix: str
) -> None:
    """Scripts registered through the batch: a tick's calls are one dispatcher EVALSHA (loaded
    on the way: Redis has never seen it), in call order, each caller with its own answer — a
    returned error reply and an error raised inside the script stay that caller's alone."""
    batch = ScriptBatch(redis_client, combine=True)
    echo = batch.register(f"-- {secrets.token_hex(8)}\n{_ECHO_OR_FAIL}")
    boom = batch.register("redis.call('INCR', KEYS[1]); return redis.call('HGET', KEYS[1], 'x')")
    order = batch.register("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    key, wrong, log = f"{redis_prefix}:n", f"{redis_prefix}:wrong", f"{redis_prefix}:log"
    results = await asyncio.gather(
        batch.call(echo, [key], ["a"]),
        batch.call(echo, [key], ["bad"]),
        batch.call(boom, [wrong], []),  # HGET on a string: WRONGTYPE raised in the script
        *(batch.call(order, [log], [str(i)]) for i in range(20)),
        batch.call(echo, [key], ["z"]),
        return_exceptions=True,
    )
    assert results[0] == b"a" and results[-1] == b"z"
    assert isinstance(results[1], ResponseError) and "refused bad" in str(results[1])
    assert isinstance(results[2], ResponseError) and "WRONGTYPE" in str(results[2])
    assert results[3:-1] == list(range(1, 21))
    assert await redis_client.lrange(log, 0, -1) == [str(i).encode() for i in range(20)]
    assert int(await redis_client.get(key)) == 2, "the refused call changed nothing"
    assert int(await redis_client.get(wrong)) == 1, "the failed call's earlier write stays"
    assert batch.combined == 1 and batch.pipelines == 0 and batch.calls == 24


async def test_an_unregistered_script_in_the_tick_keeps_the_pipeline(
    redis_client: Any, redis_prefix: str
) -> None:
    batch = ScriptBatch(redis_client, combine=True)
    registered = batch.register(_ECHO_OR_FAIL)
    other = _fresh(redis_client, _ECHO_OR_FAIL)
    key = f"{redis_prefix}:n"
    results = await asyncio.gather(
        batch.call(registered, [key], ["a"]), batch.call(other, [key], ["b"])
    )
    assert results == [b"a", b"b"]
    assert batch.combined == 0 and batch.pipelines >= 1


async def test_a_cluster_client_never_combines() -> None:
    from redis.asyncio.cluster import RedisCluster

    class FakeCluster(RedisCluster):
        def __init__(self) -> None:  # no connection: only its type matters here
            pass

    assert ScriptBatch(FakeCluster())._combine is False
