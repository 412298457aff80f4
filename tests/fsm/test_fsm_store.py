"""One suite, two stores: records with TTL, the turn lock, dedup marks, rate counters."""

from __future__ import annotations

import asyncio

import pytest

from fsm import keys
from fsm.record import DialogRecord, RecordError
from fsm.redis_store import RedisStore, store_from_url
from fsm.store import LockLost, LockTimeout, MemoryStore
from tests.fsm.conftest import StoreCase

MSISDN = "48600000001"


async def test_save_load_delete_round_trip(case: StoreCase) -> None:
    store = case.store
    assert await store.load(MSISDN) is None
    rec = DialogRecord("sms", "confirm", {"op": "activate", "args": {"code": "ROAM"}, "n": 3})
    await store.save(MSISDN, rec, 60)
    assert await store.load(MSISDN) == rec
    assert await store.load(MSISDN, "ussd") is None, "dialogs of one subscriber are separate"
    assert await store.load("48600000002") is None
    await store.delete(MSISDN)
    assert await store.load(MSISDN) is None


async def test_polish_text_survives(case: StoreCase) -> None:
    rec = DialogRecord("ussd", "root", {"t": "Zażółć gęślą jaźń"})
    await case.store.save(MSISDN, rec, 60)
    assert await case.store.load(MSISDN, "ussd") == rec


async def test_record_expires_after_ttl(case: StoreCase) -> None:
    store = case.store
    await store.save(MSISDN, DialogRecord("ussd", "root", {}), 0.3)
    await store.save(MSISDN, DialogRecord("sms", "confirm", {}), 30)
    assert await store.load(MSISDN, "ussd") is not None
    await case.advance(0.45)
    assert await store.load(MSISDN, "ussd") is None
    assert await store.load(MSISDN, "sms") is not None, "a longer TTL is still alive"


async def test_save_renews_ttl(case: StoreCase) -> None:
    store = case.store
    await store.save(MSISDN, DialogRecord("ussd", "a", {}), 0.4)
    await case.advance(0.25)
    await store.save(MSISDN, DialogRecord("ussd", "b", {}), 0.4)
    await case.advance(0.25)
    rec = await store.load(MSISDN, "ussd")
    assert rec is not None and rec.state == "b"


async def test_lock_serialises_turns_of_one_subscriber_in_order(case: StoreCase) -> None:
    store = case.store
    events: list[str] = []
    first_in = asyncio.Event()

    async def turn(name: str, hold: asyncio.Event | None) -> None:
        async with store.lock(MSISDN):
            events.append(f"{name}+")
            if hold is not None:
                first_in.set()
                await asyncio.wait_for(hold.wait(), 5)
            else:
                await asyncio.sleep(0)
            rec = await store.load(MSISDN)
            seen = list(rec.data["seen"]) if rec else []
            await store.save(MSISDN, DialogRecord("sms", "idle", {"seen": [*seen, name]}), 60)
            events.append(f"{name}-")

    release = asyncio.Event()
    t1 = asyncio.create_task(turn("one", release))
    await asyncio.wait_for(first_in.wait(), 5)
    t2 = asyncio.create_task(turn("two", None))
    t3 = asyncio.create_task(turn("three", None))
    await asyncio.sleep(0.05)
    assert events == ["one+"], "the others wait while the first holds the lock"
    release.set()
    await asyncio.wait_for(asyncio.gather(t1, t2, t3), 10)
    assert events == ["one+", "one-", "two+", "two-", "three+", "three-"]
    rec = await store.load(MSISDN)
    assert rec is not None and rec.data["seen"] == ["one", "two", "three"], "none lost"


async def test_lock_of_other_subscribers_does_not_block(case: StoreCase) -> None:
    async with case.store.lock(MSISDN), asyncio.timeout(2), case.store.lock("48600000002"):
        pass


async def test_lock_wait_times_out(case: StoreCase) -> None:
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def holder() -> None:
        async with case.store.lock(MSISDN):
            entered.set()
            await asyncio.wait_for(leave.wait(), 5)

    task = asyncio.create_task(holder())
    await asyncio.wait_for(entered.wait(), 5)
    with pytest.raises(LockTimeout):
        async with case.store.lock(MSISDN, wait=0.1):
            pass
    leave.set()
    await task
    async with asyncio.timeout(2), case.store.lock(MSISDN, wait=0.5):
        pass


async def test_lock_released_on_error(case: StoreCase) -> None:
    with pytest.raises(ZeroDivisionError):
        async with case.store.lock(MSISDN):
            raise ZeroDivisionError
    async with asyncio.timeout(2), case.store.lock(MSISDN, wait=0.5):
        pass


async def test_hit_counts_in_a_fixed_window(case: StoreCase) -> None:
    key = keys.rate(MSISDN)
    assert [await case.store.hit(key, 0.3) for _ in range(3)] == [1, 2, 3]
    assert await case.store.hit(keys.rate("48600000002"), 0.3) == 1
    await case.advance(0.45)
    assert await case.store.hit(key, 0.3) == 1


async def test_guarded_save_inside_the_lock(case: StoreCase) -> None:
    async with case.store.lock(MSISDN) as guard:
        await case.store.save(MSISDN, DialogRecord("sms", "x", {}), 60, guard=guard)
        await case.store.delete(MSISDN, "ussd", guard=guard)
    assert await case.store.load(MSISDN) is not None


def test_keys_carry_the_msisdn_hash_tag() -> None:
    assert keys.session("p", MSISDN, "sms") == "p:dlg:{48600000001}:sms"
    assert keys.lock("p", MSISDN) == "p:lock:{48600000001}"
    with pytest.raises(ValueError):
        keys.lock("p", "48{6}")


def test_record_is_compact_and_rejects_garbage() -> None:
    rec = DialogRecord("ussd", "services.list", {"page": 2, "sid": "abc"})
    assert DialogRecord.decode(rec.encode()) == rec
    assert len(rec.encode()) < 80
    with pytest.raises(RecordError):
        DialogRecord.decode(b"{not json")


async def test_memory_store_drops_idle_locks_and_expired_records() -> None:
    clock_now = [0.0]
    store = MemoryStore("t", clock=lambda: clock_now[0])
    async with store.lock(MSISDN):
        assert store.idle_locks == 1
    assert store.idle_locks == 0
    for i in range(10):
        await store.save(f"4860000{i:04d}", DialogRecord("sms", "s", {}), 5)
    assert len(store) == 10
    clock_now[0] = 6.0
    assert store.sweep() == 10
    assert len(store) == 0


@pytest.mark.redis
async def test_redis_lock_holds_across_processes(
    redis_server_url: str, redis_prefix: str, redis_client: object
) -> None:
    """Two stores on two connections stand in for two processes: the Redis lock excludes them."""
    a = store_from_url(redis_server_url, redis_prefix)
    b = store_from_url(redis_server_url, redis_prefix)
    assert isinstance(a, RedisStore) and isinstance(b, RedisStore)
    try:
        async with a.lock(MSISDN):
            with pytest.raises(LockTimeout):
                async with b.lock(MSISDN, wait=0.15):
                    pass
        async with asyncio.timeout(2), b.lock(MSISDN, wait=1):
            pass
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.redis
async def test_redis_save_refused_after_lock_was_lost(
    redis_prefix: str, redis_client: object
) -> None:
    store = RedisStore(redis_client, redis_prefix, lock_ttl=0.1)
    other = RedisStore(redis_client, redis_prefix)  # another process: its own local locks
    async with store.lock(MSISDN) as guard:
        await asyncio.sleep(0.2)  # the lock TTL passes: another process may take over now
        async with other.lock(MSISDN, wait=1):
            pass
        with pytest.raises(LockLost):
            await store.save(MSISDN, DialogRecord("sms", "x", {}), 60, guard=guard)
    assert await store.load(MSISDN) is None


def test_store_from_url_picks_the_implementation() -> None:
    assert isinstance(store_from_url(None), MemoryStore)
    assert isinstance(store_from_url("memory://"), MemoryStore)
    from backend.errors import ConfigError

    with pytest.raises(ConfigError):
        store_from_url("http://nope")


async def test_open_turn_counts_the_turn_and_loads_the_record(case: StoreCase) -> None:
    rec = DialogRecord("sms", "confirm", {"op": "x"})
    await case.store.save(MSISDN, rec, 60)
    async with case.store.open_turn(MSISDN, "sms", keys.rate(MSISDN), 60) as start:
        assert (start.hits, start.record, start.undecodable) == (1, rec, False)
    async with case.store.open_turn(MSISDN, "ussd", keys.rate(MSISDN), 60) as start:
        assert (start.hits, start.record) == (2, None)


async def test_last_write_releases_the_lock(case: StoreCase) -> None:
    """``release=True``: the turn's final save frees the lock in the same call."""
    async with case.store.lock(MSISDN) as guard:
        await case.store.save(MSISDN, DialogRecord("sms", "x", {}), 60, guard=guard, release=True)
    async with case.store.lock(MSISDN) as guard:
        await case.store.delete(MSISDN, "sms", guard=guard, release=True)
    async with asyncio.timeout(2), case.store.lock(MSISDN, wait=0.5):
        assert await case.store.load(MSISDN) is None


@pytest.mark.redis
async def test_redis_release_with_the_save_frees_the_key(
    redis_prefix: str, redis_client: object
) -> None:
    store = RedisStore(redis_client, redis_prefix)
    async with store.lock(MSISDN) as guard:
        await store.save(MSISDN, DialogRecord("sms", "x", {}), 60, guard=guard, release=True)
        assert guard.released
        assert await redis_client.get(keys.lock(redis_prefix, MSISDN)) is None  # type: ignore[attr-defined]
    assert await redis_client.exists(keys.session(redis_prefix, MSISDN, "sms")) == 1  # type: ignore[attr-defined]


async def test_open_turn_locks_counts_and_loads(case: StoreCase) -> None:
    """The turn's opening call: lock held, rate counted, record loaded (one round trip on Redis)."""
    store = case.store
    rec = DialogRecord("sms", "confirm", {"op": "x"})
    await store.save(MSISDN, rec, 60)
    rate = keys.rate(MSISDN)
    async with store.open_turn(MSISDN, "sms", rate, 60) as start:
        assert (start.hits, start.record, start.undecodable) == (1, rec, False)
        with pytest.raises(LockTimeout):
            async with store.lock(MSISDN, wait=0.1):
                pass
        await store.save(
            MSISDN, DialogRecord("sms", "idle", {}), 60, guard=start.guard, release=True
        )
    async with store.open_turn(MSISDN, "ussd", rate, 60) as start:
        assert (start.hits, start.record) == (2, None)
    async with asyncio.timeout(2), store.lock(MSISDN, wait=0.5):
        pass  # released on exit without a write


async def test_open_turn_reports_an_undecodable_record(case: StoreCase) -> None:
    store = case.store
    if isinstance(store, MemoryStore):
        store._put(keys.session(store.prefix, MSISDN, "sms"), b"\xff not a record", 60)
    else:
        assert isinstance(store, RedisStore)
        await store._redis.set(keys.session(store.prefix, MSISDN, "sms"), b"\xff not a record")
    async with store.open_turn(MSISDN, "sms", keys.rate(MSISDN), 60) as start:
        assert start.record is None and start.undecodable
        assert start.hits == 1


@pytest.mark.redis
async def test_redis_open_turn_waits_for_another_process(
    redis_prefix: str, redis_client: object
) -> None:
    """Lock taken elsewhere: the one-call path falls back to waiting, then loads after the lock."""
    a = RedisStore(redis_client, redis_prefix)
    b = RedisStore(redis_client, redis_prefix)  # another process: its own local locks
    rate = keys.rate(MSISDN)
    order: list[str] = []
    async with a.lock(MSISDN) as guard:

        async def other() -> None:
            async with b.open_turn(MSISDN, "sms", rate, 60, wait=2) as start:
                order.append(f"b sees {start.record.state if start.record else None}")

        waiting = asyncio.create_task(other())
        await asyncio.sleep(0.05)
        order.append("a saves")
        await a.save(MSISDN, DialogRecord("sms", "confirm", {}), 60, guard=guard, release=True)
    await asyncio.wait_for(waiting, 2)
    assert order == ["a saves", "b sees confirm"], "loaded after the lock, so it sees a's write"
    with pytest.raises(LockTimeout):
        async with a.lock(MSISDN), b.open_turn(MSISDN, "sms", rate, 60, wait=0.1):
            pass


async def test_memory_open_turn_releases_the_lock_when_loading_fails() -> None:
    """open_turn on MemoryStore (a plain context manager): a load that raises leaves no lock
    held, and a timed-out waiter leaves none behind either."""

    class Failing(MemoryStore):
        async def load(self, msisdn: str, dialog: str = "sms") -> None:
            raise OSError("disk")

    store = Failing()
    with pytest.raises(OSError):
        async with store.open_turn("48600000001", "sms", "r", 60.0):
            raise AssertionError("not reached")
    assert store.idle_locks == 0
    async with store.lock("48600000001"):
        with pytest.raises(LockTimeout):
            async with store.open_turn("48600000001", "sms", "r", 60.0, wait=0.01):
                raise AssertionError("not reached")
        assert store.idle_locks == 1
    assert store.idle_locks == 0
    async with MemoryStore().open_turn("48600000001", "sms", "r", 60.0) as start:
        assert start.guard.msisdn == "48600000001" and start.hits == 1


@pytest.mark.redis
async def test_redis_lock_left_by_this_process_is_broken_at_once(
    redis_prefix: str, redis_client: object
) -> None:
    """Redis restarted from its append-only file still holds a lock one of our turns took but
    could not release: the next turn of that subscriber takes it over without waiting lock_ttl,
    while a live lock of another process (same host, same pid, another store) is respected."""
    store = RedisStore(redis_client, redis_prefix)
    other = RedisStore(redis_client, redis_prefix)  # another process's store on this host
    key = keys.lock(redis_prefix, MSISDN)
    await redis_client.set(key, store._token(), px=30_000)  # type: ignore[attr-defined]
    async with asyncio.timeout(1), store.lock(MSISDN, wait=0.5):
        pass
    async with asyncio.timeout(1), store.open_turn(MSISDN, "sms", keys.rate(MSISDN), 60) as start:
        assert start.record is None
    await redis_client.set(key, other._token(), px=30_000)  # type: ignore[attr-defined]
    with pytest.raises(LockTimeout):
        async with store.lock(MSISDN, wait=0.15):
            pass
