"""The Redis outbox's lease script: one head per subscriber, not-before from the injected clock.

The contract tests in test_outbox.py run every store through the public API; these look at
what only the Redis store can get wrong — the Lua script that picks and claims entries.
"""

from __future__ import annotations

from typing import Any

import pytest

from fsm import keys
from gateway.outbox.redis import RedisOutbox

pytestmark = pytest.mark.redis


class FakeClock:
    """Epoch seconds far in the past: a script reading Redis TIME instead would see every
    not-before as long passed."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _pending(client: Any, prefix: str) -> dict[str, int]:
    """Entry id → times delivered, over the whole group's pending list."""
    stream = keys.outbox_stream(prefix)
    rows = await client.xpending_range(stream, keys.OUTBOX_GROUP, "-", "+", 100)
    return {r["message_id"].decode(): r["times_delivered"] for r in rows}


async def test_not_before_follows_the_injected_clock(redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock()
    box = RedisOutbox(redis_client, redis_prefix, clock=clock)
    await box.put("48600000001", ["first", "second"])
    [item] = await box.take("c1", 10)
    await box.retry(item, 30.0, "throttled", {0: "id-0"})
    assert await box.take("c1", 10) == []  # "first" not before +30 s, "second" behind it
    assert await box.take("c2", 10) == []
    clock.now += 29.9
    assert await box.take("c1", 10) == []
    clock.now += 0.2
    [again] = await box.take("c1", 10)
    assert (again.id, again.text, again.attempts) == (item.id, "first", 2)
    assert dict(again.accepted) == {0: "id-0"}
    assert await box.take("c1", 10) == []  # "second" still waits for "first"
    await box.done(again, ["id-0", "id-1"])
    [second] = await box.take("c1", 10)
    assert (second.text, second.attempts) == ("second", 1)


async def test_one_entry_per_subscriber_per_take(redis_client: Any, redis_prefix: str) -> None:
    box = RedisOutbox(redis_client, redis_prefix, clock=FakeClock())
    await box.put("48600000001", ["a1", "a2", "a3"])
    await box.put("48600000002", ["b1", "b2"])
    first = await box.take("c1", 10)
    assert sorted(i.text for i in first) == ["a1", "b1"]
    assert await box.take("c1", 10) == [] and await box.take("c2", 10) == []
    for item in first:
        await box.done(item, ["x"])
    second = await box.take("c1", 10)
    assert sorted(i.text for i in second) == ["a2", "b2"]


async def test_an_entry_listed_twice_is_leased_once(redis_client: Any, redis_prefix: str) -> None:
    """A take may see one entry twice (its own pending list and XAUTOCLAIM): still one head."""
    box = RedisOutbox(redis_client, redis_prefix, clock=FakeClock())
    [a1, a2] = await box.put("48600000001", ["a1", "a2"])
    [b1] = await box.put("48600000002", "b1")
    raw = await redis_client.xreadgroup(
        keys.OUTBOX_GROUP, "c1", {keys.outbox_stream(redis_prefix): ">"}, count=10
    )
    fields = {
        entry.decode(): {k.decode(): v.decode() for k, v in f.items()} for entry, f in raw[0][1]
    }
    candidates = [(e, fields[e]) for e in (a1, a1, a2, b1, b1)]
    out = await box._eligible("c1", candidates, set(), 10)
    assert sorted((i.text, i.attempts) for i in out) == [("a1", 1), ("b1", 1)]
    # Nothing else was leased and nothing was dropped: a2 stays pending, waiting for a1.
    assert set(await _pending(redis_client, redis_prefix)) == {a1, a2, b1}
    assert await box._eligible("c1", candidates, {a1, b1}, 10) == []


async def test_the_limit_counts_chosen_entries(redis_client: Any, redis_prefix: str) -> None:
    box = RedisOutbox(redis_client, redis_prefix, clock=FakeClock())
    for n in range(5):
        await box.put(f"4860000000{n}", "hi")
    first = await box.take("c1", 2)
    assert len(first) == 2 and all(i.attempts == 1 for i in first)
    rest = await box.take("c2", 10)
    assert len(rest) == 3 and not {i.id for i in first} & {i.id for i in rest}


async def test_an_entry_finished_elsewhere_is_acked_not_taken(
    redis_client: Any, redis_prefix: str
) -> None:
    """The done-mark already reached the entry's seq (another consumer finished it while ours
    still listed it): it is acknowledged, not handed out again."""
    box = RedisOutbox(redis_client, redis_prefix, clock=FakeClock())
    [a1] = await box.put("48600000001", "a1")
    raw = await redis_client.xreadgroup(
        keys.OUTBOX_GROUP, "c1", {keys.outbox_stream(redis_prefix): ">"}, count=10
    )
    [(entry, f)] = raw[0][1]
    assert entry.decode() == a1
    await redis_client.set(keys.outbox_done(redis_prefix, "48600000001"), 1)
    fields = {k.decode(): v.decode() for k, v in f.items()}
    assert await box._eligible("c1", [(a1, fields)], set(), 10) == []
    assert await _pending(redis_client, redis_prefix) == {}
