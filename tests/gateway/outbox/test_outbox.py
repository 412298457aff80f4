"""One contract, three stores: memory, Redis Streams, SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.outbox.base import MemoryOutbox, Outbox, OutboxItem

Factory = Callable[..., Outbox]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        # RESP2 replies have another shape on the wire (lists, not maps); without the wire the
        # outbox runs on the client's own methods, as with a cluster client.
        pytest.param("redis-resp2", marks=pytest.mark.redis),
        pytest.param("redis-client", marks=pytest.mark.redis),
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, url); resolved synchronously: the server fixtures run their own event loop."""
    kind = str(request.param)
    if kind.startswith("redis"):
        return kind, request.getfixturevalue("redis_server_url")
    if kind == "postgres":
        return kind, request.getfixturevalue("postgres_url")
    if kind == "sqlite":
        return kind, f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    return kind, ""


@pytest.fixture
async def make_outbox(store: tuple[str, str], redis_prefix: str) -> AsyncIterator[Factory]:
    """A factory of outboxes sharing one store (a second call = a second process)."""
    kind, url = store
    if kind == "memory":
        shared: dict[float, MemoryOutbox] = {}

        def make(lease: float = 60.0) -> Outbox:
            return shared.setdefault(lease, MemoryOutbox(lease=lease))

        yield make
        return
    if kind.startswith("redis"):
        import redis.asyncio as aioredis

        from gateway.outbox.redis import RedisOutbox

        prefix = redis_prefix
        client = aioredis.from_url(url, **({"protocol": 2} if kind == "redis-resp2" else {}))

        def make(lease: float = 60.0) -> Outbox:
            outbox = RedisOutbox(client, prefix, lease=lease)
            if kind == "redis-client":
                outbox._wire = None
            return outbox

        yield make
        async for key in client.scan_iter(match=f"*{prefix}*"):
            await client.delete(key)
        await client.aclose()
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.outbox.sql import SqlOutbox, outbox_table

    engine = create_async_engine(url)
    first = SqlOutbox(engine)
    await first.create()
    async with engine.begin() as conn:
        await conn.execute(outbox_table.delete())

    def make_sql(lease: float = 60.0) -> Outbox:
        return SqlOutbox(engine, lease=lease, poll=0.02)

    yield make_sql
    await engine.dispose()


async def test_put_take_done_roundtrip(make_outbox: Factory) -> None:
    box = make_outbox()
    meta = {"channel": "ussd", "end": False, "its_session_info": 0x0102}
    [item_id] = await box.put("48600000001", "Menu:\n1 Konto", meta)
    assert await box.depth() == 1
    [item] = await box.take("c1", 10)
    assert (item.id, item.msisdn, item.text, dict(item.meta)) == (
        item_id,
        "48600000001",
        "Menu:\n1 Konto",
        meta,
    )
    assert 1 <= item.ref <= 0xFFFF and item.attempts == 1 and dict(item.accepted) == {}
    assert await box.take("c1", 10) == []  # leased
    await box.done(item, ["abc"])
    assert await box.depth() == 0
    assert await box.take("c1", 10) == []


async def test_one_subscriber_waits_for_the_earlier_reply(make_outbox: Factory) -> None:
    box = make_outbox()
    await box.put("48600000001", ["a1", "a2"])
    await box.put("48600000002", "b1")
    first = await box.take("c1", 10)
    assert sorted(i.text for i in first) == ["a1", "b1"]
    assert await box.take("c2", 10) == []
    a1 = next(i for i in first if i.text == "a1")
    await box.done(a1, ["1"])
    # Redis keeps an entry with the consumer that read it first; any live consumer may send it.
    [a2] = await box.take("c2", 10) + await box.take("c1", 10)
    assert a2.text == "a2"


async def test_retry_keeps_order_and_accepted_parts(make_outbox: Factory) -> None:
    box = make_outbox()
    await box.put("48600000001", ["first", "second"])
    [item] = await box.take("c1", 10)
    await box.retry(item, 0.3, "throttled", {0: "id-0"})
    assert await box.take("c1", 10) == []  # not before 0.3 s, and "second" must wait
    await asyncio.sleep(0.35)
    [again] = await box.take("c1", 10)
    assert again.id == item.id and again.text == "first" and again.ref == item.ref
    assert dict(again.accepted) == {0: "id-0"} and again.attempts == 2


async def test_failed_item_leaves_and_unblocks_the_next(make_outbox: Factory) -> None:
    box = make_outbox()
    await box.put("48600000001", ["bad", "good"])
    [bad] = await box.take("c1")
    await box.fail(bad, "ESME_RINVDSTADR")
    [good] = await box.take("c1")
    assert good.text == "good"
    failed = await box.failed()
    assert [(i.text, err) for i, err in failed] == [("bad", "ESME_RINVDSTADR")]
    assert await box.depth() == 1


async def test_lease_of_a_dead_consumer_expires(make_outbox: Factory) -> None:
    dead = make_outbox(lease=0.3)
    alive = make_outbox(lease=0.3)
    await dead.put("48600000001", "orphan")
    [taken] = await dead.take("dead-consumer")
    assert await alive.take("alive") == []
    await asyncio.sleep(0.45)
    [reclaimed] = await alive.take("alive")
    assert reclaimed.id == taken.id and reclaimed.text == "orphan"
    await alive.done(reclaimed, ["1"])
    assert await alive.depth() == 0


async def test_heartbeat_keeps_a_slow_send(make_outbox: Factory) -> None:
    slow = make_outbox(lease=0.4)
    other = make_outbox(lease=0.4)
    await slow.put("48600000001", "slow")
    assert len(await slow.take("slow")) == 1
    for _ in range(4):
        await asyncio.sleep(0.15)
        await slow.heartbeat("slow")
    assert await other.take("other") == []


async def test_two_processes_drain_without_double_sends_in_order(make_outbox: Factory) -> None:
    producer = make_outbox()
    subscribers = [f"4860000000{i}" for i in range(5)]
    for n in range(8):
        for msisdn in subscribers:
            await producer.put(msisdn, f"{msisdn}:{n}")
    sent: list[str] = []
    rng = random.Random(7)

    async def worker(box: Outbox, name: str) -> None:
        idle = 0
        while idle < 20:
            items = await box.take(name, 3)
            if not items:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            for item in items:
                await asyncio.sleep(rng.random() * 0.005)
                if rng.random() < 0.2:
                    await box.retry(item, 0.0, "throttled", {})
                else:
                    sent.append(item.text)
                    await box.done(item, ["x"])

    await asyncio.wait_for(
        asyncio.gather(worker(make_outbox(), "p1"), worker(make_outbox(), "p2")), 60
    )
    assert sorted(sent) == sorted(f"{m}:{n}" for m in subscribers for n in range(8))
    for msisdn in subscribers:
        mine = [int(t.split(":")[1]) for t in sent if t.startswith(msisdn)]
        assert mine == list(range(8))
    assert await producer.depth() == 0


async def test_puts_and_dones_made_together_keep_their_ids_and_order(
    make_outbox: Factory,
) -> None:
    """Many turns queue their replies in the same loop tick (the SQL and Redis stores write
    them as one batch): every caller gets its own ids, a subscriber's replies keep their
    order, and items finished together all leave."""
    box = make_outbox()
    subscribers = [f"486000001{i:02d}" for i in range(20)]
    ids = await asyncio.gather(*(box.put(m, [f"{m}:0", f"{m}:1"]) for m in subscribers))
    assert all(len(pair) == 2 for pair in ids)
    assert len({i for pair in ids for i in pair}) == 40
    assert await box.depth() == 40
    first = await box.take("c1", 100)
    assert sorted(i.text for i in first) == sorted(f"{m}:0" for m in subscribers)
    assert {i.id for i in first} == {pair[0] for pair in ids}
    await asyncio.gather(*(box.done(i, ["x"]) for i in first))
    second = await box.take("c1", 100) + await box.take("c2", 100)
    assert sorted(i.text for i in second) == sorted(f"{m}:1" for m in subscribers)
    assert await box.take("c1", 100) == []  # what is being sent is not handed out again
    await asyncio.gather(*(box.done(i, ["y"]) for i in second))
    assert await box.depth() == 0


async def test_a_take_waiting_for_work_wakes_on_a_put(make_outbox: Factory) -> None:
    box = make_outbox()
    waiting = asyncio.create_task(box.take("c1", 10, wait=5.0))
    await asyncio.sleep(0.01)
    await box.put("48600000001", "hello")
    [item] = await asyncio.wait_for(waiting, 5.0)
    assert item.text == "hello"


def test_items_are_plain_records() -> None:
    item = OutboxItem("1", "48600000001", "x", {}, 5, 1)
    assert item.accepted == {} and item.attempts == 0


async def test_recover_takes_back_a_dead_consumers_items_at_once(make_outbox: Factory) -> None:
    """A restarted process need not wait out a crashed one's leases (MemoryOutbox: nothing
    outlives its process, so nothing to recover)."""
    crashed = make_outbox(lease=60.0)
    restarted = make_outbox(lease=60.0)
    await crashed.put("48600000001", ["first", "second"])
    await crashed.put("48600000002", "other")
    held = await crashed.take("host-1-bind", limit=5)
    assert len(held) == 2
    if isinstance(crashed, MemoryOutbox):
        assert await restarted.recover("host-2-bind", lambda c: c == "host-1-bind") == 0
        return
    assert await restarted.take("host-2-bind", limit=5) == []
    assert await restarted.recover("host-2-bind", lambda c: False) == 0
    # Redis also moves the entry the crashed consumer had read and deferred ("second").
    assert await restarted.recover("host-2-bind", lambda c: c == "host-1-bind") in (2, 3)
    again = await restarted.take("host-2-bind", limit=5)
    assert sorted(i.text for i in again) == ["first", "other"]
    for item in again:
        await restarted.done(item, ["1"])
    [last] = await restarted.take("host-2-bind", limit=5)
    assert last.text == "second"
    await restarted.done(last, ["2"])
    assert await restarted.depth() == 0


def test_dead_local_consumer_judges_only_this_hosts_gone_processes() -> None:
    import os
    import socket
    import subprocess
    import sys

    from gateway.outbox.sender import consumer_name, dead_local_consumer

    host = socket.gethostname()
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = int(child.stdout)
    assert dead_local_consumer(f"{host}-{gone}-idea24@127.0.0.1:2775")
    assert dead_local_consumer(f"{host}-{os.getpid()}-0ther-idea24@127.0.0.1:2775")  # same pid
    assert not dead_local_consumer(consumer_name("idea24@127.0.0.1:2775"))  # this process
    assert not dead_local_consumer(f"{host}-{os.getppid()}-idea24@127.0.0.1:2775")
    assert not dead_local_consumer(f"other-host-{gone}-idea24@127.0.0.1:2775")
    assert not dead_local_consumer(f"{host}-notapid-x")
