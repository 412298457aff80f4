"""The outbox on Redis Streams: shared by every bind of every gateway process.

Layout (key names in :mod:`fsm.keys`): one stream ``{prefix}:outbox`` read through the
consumer group ``senders``; per subscriber a sequence counter and a "done up to" mark with the
MSISDN in a hash tag; per entry a small hash with its retry state (``nb`` = not before, epoch
seconds; ``acc`` = parts accepted, JSON; ``n`` = attempts) since stream entries are immutable.

- ``put`` numbers the items and appends them in one Lua call, so sequence order is stream order.
- ``take`` reads new entries (``>``) and, only while one of its consumer's entries waits (an
  earlier reply of that subscriber still leaving, a retry delay), its own pending ones; a few
  times per lease it reclaims entries idle longer than ``lease`` from dead consumers with
  XAUTOCLAIM. An entry is handed out only when its subscriber's done-mark is ``seq - 1``
  (every earlier reply left) and its ``nb`` has passed; otherwise it stays pending with this
  consumer and is looked at again. That decision, the attempt count and the claim are one Lua
  call for all candidates of a look (``CLAIM``, :mod:`gateway.outbox.redis_scripts`; ``now``
  comes from the injected clock).
- ``heartbeat`` re-claims the entries being sent (XCLAIM JUSTID resets their idle time), so a
  slow send is never mistaken for a dead consumer.
- ``done`` / ``fail`` advance the done-mark, XACK and XDEL in one Lua call.

Cost per reply: every ``put`` and every ``done``/``fail`` made in the same event-loop tick (one
per turn, many turns in flight) is written by one script call
(:class:`~gateway.outbox.coalescer.Coalescer`); each caller still returns only once its own
write is in Redis. A batch whose answer a Redis restart cut off is sent again by the client's
retry: its replies are queued twice (at most one per subscriber, since a subscriber has one turn
in flight). A ``take`` that finds work costs two round trips: XREADGROUP and one ``CLAIM`` call.

A Redis that lost its data (no persistence, a failover to a replica that had not caught up)
comes back without the stream and the group: the first command that needs the group fails
with ``NOGROUP``. The outbox then creates both again (from id 0, so replies queued since the
loss are read) and goes on; the process whose ``XGROUP CREATE`` won counts the replies that
were waiting at the loss in ``lost`` (the depth it last knew, less what it was sending, which
still leaves). A finish whose entry is gone does not move the done-mark: sequence numbers
restart with the data, and an old high mark would hide every new reply.

Every script gets all its keys in KEYS, but one call touches keys of many hash slots: the
stream, per-subscriber keys tagged by MSISDN, per-entry state keys. On Redis Cluster they
would need the stream sharded by the same tag (not done: one Redis is the deployment for now).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from fsm import constants
from fsm.keys import (
    OUTBOX_GROUP,
    outbox_accepted,
    outbox_done,
    outbox_failed,
    outbox_seq,
    outbox_stream,
)
from fsm.redis_wire import wire_for
from gateway.outbox.base import (
    DEFAULT_LEASE,
    Outbox,
    OutboxItem,
    new_ref,
)
from gateway.outbox.coalescer import Coalescer
from gateway.outbox.redis_scripts import CLAIM, FINISH, PUT

log = logging.getLogger(__name__)

SEQ_TTL = 7 * 24 * 3600
#: Seconds a waiting ``take`` blocks at most while an entry of its consumer waits its turn.
PARKED_RECHECK = 0.05


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOutbox(Outbox):
    def __init__(
        self,
        redis: Redis,
        prefix: str = constants.DEFAULT_PREFIX,
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
        scan: int = 500,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._stream = outbox_stream(prefix)
        self._failed_key = outbox_failed(prefix)
        self._lease = lease
        self._clock = clock
        self._scan = scan
        self._put = redis.register_script(PUT)
        self._finish = redis.register_script(FINISH)
        self._claim = redis.register_script(CLAIM)
        # The hot calls (scripts, reads of the stream) on held connections: ~35 instead of
        # ~140 µs of CPU per round trip (fsm/redis_wire.py); None for a cluster client.
        self._wire = wire_for(redis)
        self._group_ready = False
        #: The newest reading of the stream as the group knows it: (Redis time, length). Every
        #: script returns one; after a loss, the last one before it says what was waiting.
        self._reading: tuple[float, int] = (0.0, 0)
        #: Entries finished after that reading on a Redis without the group (sent, not lost).
        self._left_since = 0
        self._at_loss: set[str] = set()
        #: Replies that were waiting when Redis lost the stream (counted by one process).
        self.lost = 0
        #: Times this process created the group again after Redis lost it.
        self.recreated = 0
        self._sending: dict[str, set[str]] = {}  # consumer → entry ids handed out, not finished
        # consumer → entries pending with it that wait (order, retry delay); None = not known
        # (first take, after recover): its pending list is read only while this is not empty.
        self._parked: dict[str, set[str] | None] = {}
        self._autoclaimed = 0.0  # monotonic time of the last XAUTOCLAIM
        self._puts: Coalescer[tuple[str, str, str], str] = Coalescer(self._put_many)
        self._finishes: Coalescer[tuple[OutboxItem, str], None] = Coalescer(self._finish_many)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self._stream, OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _regroup(self, exc: ResponseError) -> None:
        """Redis lost the stream or the group (``NOGROUP``): create both again. (``_group_ready``
        stays set: a put's ``_ensure_group`` meanwhile would win the race and hide the loss.)"""
        # Waiting at the loss: the stream's last reading, less what was being sent then (it
        # leaves through the SMSC, its finish acknowledges nothing) or finished since. Taken
        # before the group exists again: from then on, readings are of the new stream.
        sending = {entry for entries in self._sending.values() for entry in entries}
        waiting = self._reading[1] - self._left_since - len(sending)
        self._reading, self._left_since = (0.0, 0), 0
        try:
            await self._redis.xgroup_create(self._stream, OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as again:
            if "BUSYGROUP" not in str(again):
                raise
            return  # another process was first: it counts the loss
        finally:
            self._parked = {consumer: None for consumer in self._parked}
        lost = max(0, waiting)
        self.recreated += 1
        self.lost += lost
        log.error(
            "outbox stream or consumer group lost by Redis (%s): created again; %d queued"
            " replies lost",
            str(exc).split(" ", 1)[0],
            lost,
        )
        # Being sent at the loss: counted lost after all if sent again later (their entry is
        # gone, so a retry would never come back).
        self._at_loss = sending & {e for entries in self._sending.values() for e in entries}

    def _note(self, reading: Sequence[Any], finished: int = 0) -> None:
        sec, usec, length = (int(x) for x in reading)
        if length < 0:
            self._left_since += finished
            return
        at = sec + usec / 1e6
        if at >= self._reading[0]:
            self._reading, self._left_since = (at, length), 0

    def _seq_key(self, msisdn: str) -> str:
        return outbox_seq(self._prefix, msisdn)

    def _done_key(self, msisdn: str) -> str:
        return outbox_done(self._prefix, msisdn)

    def _acc_key(self, entry: str) -> str:
        return outbox_accepted(self._prefix, entry)

    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        await self._ensure_group()
        meta_json = json.dumps(dict(meta or {}), separators=(",", ":"))
        texts = [texts] if isinstance(texts, str) else texts
        return await self._puts([(msisdn, text, meta_json) for text in texts])

    async def _put_many(self, items: list[tuple[str, str, str]]) -> list[str]:
        keys = [self._stream]
        args: list[Any] = [SEQ_TTL]
        for msisdn, text, meta_json in items:
            keys += [self._seq_key(msisdn), self._done_key(msisdn)]
            args += [msisdn, text, meta_json, new_ref()]
        raw_ids, reading = await self._run(self._put, keys, args)
        self._note(reading)
        return [_s(entry) for entry in raw_ids]

    async def _run(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        if self._wire is not None:
            return await self._wire.evalsha(script, keys, args)
        return await script(keys=keys, args=args)

    async def _read(
        self, consumer: str, start: str, count: int, block: int | None = None
    ) -> tuple[list[tuple[str, dict[str, str]]], int]:
        """XREADGROUP of the stream from ``start`` ('>' new, '0' own pending) as (id, fields);
        with the count of entries read, deleted ones included."""
        if self._wire is None:
            reply = await self._redis.xreadgroup(
                OUTBOX_GROUP, consumer, {self._stream: start}, count=count, block=block
            )
            return _entries(reply), _count(reply)
        args: list[Any] = ["XREADGROUP", "GROUP", OUTBOX_GROUP, consumer, "COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        reply = await self._wire.execute(*args, "STREAMS", self._stream, start)
        return _wire_entries(reply)

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        try:
            return await self._take(consumer, limit, wait)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self._regroup(exc)
            return await self._take(consumer, limit, wait)

    async def _take(self, consumer: str, limit: int, wait: float) -> list[OutboxItem]:
        await self._ensure_group()
        sending = self._sending.setdefault(consumer, set())
        candidates: list[tuple[str, dict[str, str]]] = []
        if self._parked.get(consumer) != set():
            # Entries read earlier that had to wait (or whose state we do not know): ours to
            # look at again. The pending list also holds what is being sent, so it is not
            # read while nothing waits.
            read, seen = await self._read(consumer, "0", self._scan)
            complete = seen < self._scan
            self._parked[consumer] = set() if complete else None
            candidates += read
        now = time.monotonic()
        if now - self._autoclaimed >= self._lease / 4:
            # A dead consumer's entries are idle for ``lease`` before they may be taken; looking
            # a few times per lease is enough (each look scans the group's pending list).
            self._autoclaimed = now
            reclaimed = await self._redis.xautoclaim(
                self._stream,
                OUTBOX_GROUP,
                consumer,
                int(self._lease * 1000),
                "0-0",
                count=self._scan,
            )
            candidates += [(_s(i), _fields(f)) for i, f in reclaimed[1] if f]
            gone = reclaimed[2] if len(reclaimed) > 2 else []
            if gone:  # deleted while pending: nothing left to send
                await self._redis.xack(self._stream, OUTBOX_GROUP, *gone)
        out = await self._eligible(consumer, candidates, sending, limit)
        if len(out) < limit:
            block = None
            if wait > 0 and not out:
                # Something of ours waits (an earlier reply still leaving): look again soon.
                block = int(
                    min(wait, PARKED_RECHECK if self._parked.get(consumer) else wait) * 1000
                )
            try:
                new, _seen = await self._read(consumer, ">", limit - len(out), block)
                out += await self._eligible(consumer, new, sending, limit - len(out))
            except (OSError, RedisError):
                if not out:
                    raise
                # What is claimed already goes out: raised, it would stay marked as being sent
                # by us and never be handed out again. The next take meets the failure.
        return out

    async def _eligible(
        self,
        consumer: str,
        candidates: list[tuple[str, dict[str, str]]],
        sending: set[str],
        limit: int,
    ) -> list[OutboxItem]:
        """The candidates that may go now, leased to ``consumer``: one script call (done-marks,
        retry states, attempt counts, claim) whatever the number of candidates."""
        fresh = [(e, f) for e, f in candidates if e not in sending]
        if not fresh:
            return []
        parked = self._parked.get(consumer)
        if parked is not None:
            parked.update(e for e, _ in fresh)  # pending with us; chosen ones leave below
        if limit <= 0:
            return []
        keys = [self._stream]
        args: list[Any] = [OUTBOX_GROUP, consumer, self._clock(), limit, SEQ_TTL]
        for entry, f in fresh:
            keys += [self._done_key(f["m"]), self._acc_key(entry)]
            args += [entry, f["m"], f["s"]]
        chosen, stale, reading = await self._run(self._claim, keys, args)
        self._note(reading)
        if parked is not None:
            parked.difference_update(_s(entry) for entry in stale)
        fields = dict(fresh)
        out: list[OutboxItem] = []
        for raw_entry, attempts, acc in chosen:
            entry = _s(raw_entry)
            f = fields[entry]
            sending.add(entry)
            if parked is not None:
                parked.discard(entry)
            out.append(
                OutboxItem(
                    entry,
                    f["m"],
                    f["t"],
                    json.loads(f.get("meta", "{}")),
                    int(f.get("r", 0)),
                    int(f["s"]),
                    int(attempts),
                    {int(k): v for k, v in json.loads(_s(acc) or "{}").items()},
                )
            )
        return out

    async def heartbeat(self, consumer: str) -> None:
        entries: list[str | bytes | int | memoryview] = [*sorted(self._sending.get(consumer, ()))]
        if entries:
            try:
                await self._redis.xclaim(
                    self._stream, OUTBOX_GROUP, consumer, 0, entries, justid=True
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._regroup(exc)

    async def recover(self, consumer: str, dead: Callable[[str], bool]) -> int:
        """Move the pending entries of dead consumers to ``consumer`` (its next ``take`` reads
        them as its own) and remove those consumers from the group."""
        await self._ensure_group()
        moved = 0
        for info in await self._redis.xinfo_consumers(self._stream, OUTBOX_GROUP):
            name = _s(info["name"])
            if name == consumer or not dead(name):
                continue
            while True:
                pending = await self._redis.xpending_range(
                    self._stream, OUTBOX_GROUP, "-", "+", self._scan, consumername=name
                )
                ids: list[str | bytes | int | memoryview] = [p["message_id"] for p in pending]
                if not ids:
                    break
                claimed = await self._redis.xclaim(
                    self._stream, OUTBOX_GROUP, consumer, 0, ids, justid=True
                )
                if not claimed:  # entries deleted while pending: nothing left to send
                    await self._redis.xack(self._stream, OUTBOX_GROUP, *ids)
                moved += len(claimed)
            await self._redis.xgroup_delconsumer(self._stream, OUTBOX_GROUP, name)
        if moved:
            self._parked[consumer] = None  # read its pending list on the next take
        return moved

    def _release(self, item: OutboxItem) -> None:
        self._at_loss.discard(item.id)
        for entries in self._sending.values():
            entries.discard(item.id)

    async def _finish_many(self, items: list[tuple[OutboxItem, str]]) -> list[None]:
        keys = [self._stream, self._failed_key]
        args: list[Any] = [OUTBOX_GROUP, SEQ_TTL]
        for item, failure in items:
            keys += [self._done_key(item.msisdn), self._acc_key(item.id)]
            args += [item.id, item.seq, failure]
        self._note(await self._run(self._finish, keys, args), finished=len(items))
        return [None] * len(items)

    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        try:
            await self._finishes([(item, "")])
        finally:
            # Only now: until the XACK, our own pending list still shows the entry, and one
            # not marked as being sent would be handed out again.
            self._release(item)

    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        if item.id in self._at_loss:
            self._at_loss.discard(item.id)
            self.lost += 1
        merged = {**item.accepted, **accepted}
        await self._redis.hset(
            self._acc_key(item.id),
            mapping={
                "nb": self._clock() + delay,
                "acc": json.dumps({str(k): v for k, v in merged.items()}),
                "err": error,
            },
        )
        for consumer, entries in self._sending.items():
            if item.id in entries:
                parked = self._parked.get(consumer)
                if parked is not None:
                    parked.add(item.id)  # still pending with that consumer: look again
        self._release(item)

    async def fail(self, item: OutboxItem, error: str) -> None:
        record = {
            "id": item.id,
            "msisdn": item.msisdn,
            "text": item.text,
            "meta": dict(item.meta),
            "seq": item.seq,
            "error": error,
        }
        try:
            await self._finishes([(item, json.dumps(record))])
        finally:
            self._release(item)

    async def close(self) -> None:
        """Let batches under way finish (their callers are waiting for them)."""
        await self._puts.drain()
        await self._finishes.drain()
        if self._wire is not None:
            await self._wire.aclose()

    async def depth(self) -> int:
        await self._ensure_group()
        return int(await self._redis.xlen(self._stream))

    async def failed(self) -> list[tuple[OutboxItem, str]]:
        out = []
        for raw in await self._redis.lrange(self._failed_key, 0, -1):
            r = json.loads(raw)
            item = OutboxItem(r["id"], r["msisdn"], r["text"], r["meta"], 0, r["seq"])
            out.append((item, r["error"]))
        return out


def _fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    out = []
    for _stream, entries in reply or []:
        for entry, raw in entries:
            if raw:  # a pending entry deleted meanwhile comes back with no fields
                out.append((_s(entry), _fields(raw)))
    return out


def _wire_entries(reply: Any) -> tuple[list[tuple[str, dict[str, str]]], int]:
    """An XREADGROUP reply as the wire gives it (RESP2 ``[[stream, [[id, [f, v, …]], …]]]``,
    RESP3 ``{stream: [[id, [f, v, …]], …]}``, nil on a timeout) → the live entries as
    (id, fields), and how many were read."""
    out, seen = [], 0
    streams = reply.items() if isinstance(reply, Mapping) else reply or []
    for _stream, entries in streams:
        for entry, flat in entries:
            seen += 1
            if not flat:  # a pending entry deleted meanwhile comes back with no fields
                continue
            if isinstance(flat, Mapping):
                out.append((_s(entry), _fields(flat)))
            else:
                it = iter(flat)
                out.append((_s(entry), {_s(k): _s(v) for k, v in zip(it, it, strict=True)}))
    return out, seen


def _count(reply: Any) -> int:
    """Entries in an XREADGROUP reply, deleted ones included."""
    return sum(len(entries) for _stream, entries in reply or [])
