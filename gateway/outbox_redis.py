"""The outbox on Redis Streams: shared by every bind of every gateway process.

Layout (key names in :mod:`gateway.outbox`): one stream ``{prefix}:outbox`` read through the
consumer group ``senders``; per subscriber a sequence counter and a "done up to" mark with the
MSISDN in a hash tag; per entry a small hash with its retry state (``nb`` = not before, epoch
seconds; ``acc`` = parts accepted, JSON; ``n`` = attempts) since stream entries are immutable.

- ``put`` numbers the item and appends it in one Lua call, so sequence order is stream order.
- ``take`` reads the consumer's own pending entries (deferred ones) and new ones (``>``), and
  reclaims entries idle longer than ``lease`` from dead consumers with XAUTOCLAIM. An entry is
  handed out only when its subscriber's done-mark is ``seq - 1`` (every earlier reply left) and
  its ``nb`` has passed; otherwise it stays pending with this consumer and is looked at again.
- ``heartbeat`` re-claims the entries being sent (XCLAIM JUSTID resets their idle time), so a
  slow send is never mistaken for a dead consumer.
- ``done`` / ``fail`` advance the done-mark, XACK and XDEL in one Lua call.

The sequence key and the stream live in different hash slots; on Redis Cluster ``put`` would
need the stream sharded by the same tag (not done: one Redis is the deployment for now).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.outbox import (
    ACCEPTED_KEY,
    DEFAULT_LEASE,
    DONE_KEY,
    FAILED_KEY,
    GROUP_NAME,
    SEQ_KEY,
    STREAM_KEY,
    Outbox,
    OutboxItem,
    new_ref,
)

_PUT = """
local seq = redis.call('INCR', KEYS[2])
if seq == 1 then redis.call('DEL', KEYS[3]) end
redis.call('EXPIRE', KEYS[2], ARGV[5])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 's', seq, 't', ARGV[2],
                      'meta', ARGV[3], 'r', ARGV[4])
return {id, seq}
"""

_FINISH = """
local done = tonumber(redis.call('GET', KEYS[2]) or '0')
if done < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4]) end
redis.call('XACK', KEYS[1], ARGV[3], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
if ARGV[5] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[5])
  redis.call('LTRIM', KEYS[4], 0, 9999)
end
return 1
"""

SEQ_TTL = 7 * 24 * 3600


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOutbox(Outbox):
    def __init__(
        self,
        redis: Redis,
        prefix: str = "idea24",
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
        scan: int = 500,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._stream = STREAM_KEY.format(prefix=prefix)
        self._failed_key = FAILED_KEY.format(prefix=prefix)
        self._lease = lease
        self._clock = clock
        self._scan = scan
        self._put = redis.register_script(_PUT)
        self._finish = redis.register_script(_FINISH)
        self._group_ready = False
        self._sending: dict[str, set[str]] = {}  # consumer → entry ids handed out, not finished

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._redis.xgroup_create(self._stream, GROUP_NAME, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _seq_key(self, msisdn: str) -> str:
        return SEQ_KEY.format(prefix=self._prefix, msisdn=msisdn)

    def _done_key(self, msisdn: str) -> str:
        return DONE_KEY.format(prefix=self._prefix, msisdn=msisdn)

    def _acc_key(self, entry: str) -> str:
        return ACCEPTED_KEY.format(prefix=self._prefix, entry=entry)

    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        await self._ensure_group()
        meta_json = json.dumps(dict(meta or {}), separators=(",", ":"))
        ids = []
        for text in [texts] if isinstance(texts, str) else texts:
            entry, _ = await self._put(
                keys=[self._stream, self._seq_key(msisdn), self._done_key(msisdn)],
                args=[msisdn, text, meta_json, new_ref(), SEQ_TTL],
            )
            ids.append(_s(entry))
        return ids

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        await self._ensure_group()
        sending = self._sending.setdefault(consumer, set())
        candidates: list[tuple[str, dict[str, str]]] = []
        own = await self._redis.xreadgroup(
            GROUP_NAME, consumer, {self._stream: "0"}, count=self._scan
        )
        candidates += _entries(own)
        reclaimed = await self._redis.xautoclaim(
            self._stream, GROUP_NAME, consumer, int(self._lease * 1000), "0-0", count=self._scan
        )
        candidates += [(_s(i), _fields(f)) for i, f in reclaimed[1] if f]
        for gone in reclaimed[2] if len(reclaimed) > 2 else []:
            await self._redis.xack(self._stream, GROUP_NAME, gone)  # deleted while pending
        out = await self._eligible(consumer, candidates, sending, limit)
        if len(out) < limit:
            new = await self._redis.xreadgroup(
                GROUP_NAME,
                consumer,
                {self._stream: ">"},
                count=limit - len(out),
                block=int(wait * 1000) if wait > 0 and not out else None,
            )
            out += await self._eligible(consumer, _entries(new), sending, limit - len(out))
        return out

    async def _eligible(
        self,
        consumer: str,
        candidates: list[tuple[str, dict[str, str]]],
        sending: set[str],
        limit: int,
    ) -> list[OutboxItem]:
        """The candidates that may go now, leased to ``consumer``: three pipelined round trips
        (done-marks, retry states, claim) whatever the number of candidates."""
        fresh = [(e, f) for e, f in candidates if e not in sending]
        if not fresh or limit <= 0:
            return []
        msisdns = sorted({f["m"] for _, f in fresh})
        pipe = self._redis.pipeline(transaction=False)
        for msisdn in msisdns:
            pipe.get(self._done_key(msisdn))
        done = {m: int(v or 0) for m, v in zip(msisdns, await pipe.execute(), strict=True)}
        ready: list[tuple[str, dict[str, str]]] = []
        stale: list[str] = []
        heads: set[str] = set()  # one entry per subscriber: the next in its sequence
        for entry, f in fresh:
            seq, msisdn = int(f["s"]), f["m"]
            if done[msisdn] >= seq:  # finished by a consumer whose XACK raced our read
                stale.append(entry)
            elif done[msisdn] == seq - 1 and msisdn not in heads:
                heads.add(msisdn)
                ready.append((entry, f))
        pipe = self._redis.pipeline(transaction=False)
        for entry in stale:
            pipe.xack(self._stream, GROUP_NAME, entry)
        for entry, _ in ready:
            pipe.hgetall(self._acc_key(entry))
        states = (await pipe.execute())[len(stale) :]
        now = self._clock()
        chosen: list[tuple[str, dict[str, str], dict[str, str]]] = []
        for (entry, f), raw in zip(ready, states, strict=True):
            state = {_s(k): _s(v) for k, v in raw.items()}
            if float(state.get("nb", 0)) <= now and len(chosen) < limit:
                chosen.append((entry, f, state))
        if not chosen:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for entry, _, _ in chosen:
            pipe.hincrby(self._acc_key(entry), "n", 1)
            pipe.expire(self._acc_key(entry), SEQ_TTL)
        ids: list[str | bytes | int | memoryview] = [entry for entry, _, _ in chosen]
        pipe.xclaim(self._stream, GROUP_NAME, consumer, 0, ids, justid=True)
        replies = await pipe.execute()
        out: list[OutboxItem] = []
        for n, (entry, f, state) in enumerate(chosen):
            sending.add(entry)
            out.append(
                OutboxItem(
                    entry,
                    f["m"],
                    f["t"],
                    json.loads(f.get("meta", "{}")),
                    int(f.get("r", 0)),
                    int(f["s"]),
                    int(replies[2 * n]),
                    {int(k): v for k, v in json.loads(state.get("acc", "{}")).items()},
                )
            )
        return out

    async def heartbeat(self, consumer: str) -> None:
        entries: list[str | bytes | int | memoryview] = [*sorted(self._sending.get(consumer, ()))]
        if entries:
            await self._redis.xclaim(self._stream, GROUP_NAME, consumer, 0, entries, justid=True)

    async def recover(self, consumer: str, dead: Callable[[str], bool]) -> int:
        """Move the pending entries of dead consumers to ``consumer`` (its next ``take`` reads
        them as its own) and remove those consumers from the group."""
        await self._ensure_group()
        moved = 0
        for info in await self._redis.xinfo_consumers(self._stream, GROUP_NAME):
            name = _s(info["name"])
            if name == consumer or not dead(name):
                continue
            while True:
                pending = await self._redis.xpending_range(
                    self._stream, GROUP_NAME, "-", "+", self._scan, consumername=name
                )
                ids: list[str | bytes | int | memoryview] = [p["message_id"] for p in pending]
                if not ids:
                    break
                claimed = await self._redis.xclaim(
                    self._stream, GROUP_NAME, consumer, 0, ids, justid=True
                )
                if not claimed:  # entries deleted while pending: nothing left to send
                    await self._redis.xack(self._stream, GROUP_NAME, *ids)
                moved += len(claimed)
            await self._redis.xgroup_delconsumer(self._stream, GROUP_NAME, name)
        return moved

    def _release(self, item: OutboxItem) -> None:
        for entries in self._sending.values():
            entries.discard(item.id)

    async def _finish_item(self, item: OutboxItem, failure: str = "") -> None:
        self._release(item)
        await self._finish(
            keys=[
                self._stream,
                self._done_key(item.msisdn),
                self._acc_key(item.id),
                self._failed_key,
            ],
            args=[item.id, item.seq, GROUP_NAME, SEQ_TTL, failure],
        )

    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        await self._finish_item(item)

    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        merged = {**item.accepted, **accepted}
        await self._redis.hset(
            self._acc_key(item.id),
            mapping={
                "nb": self._clock() + delay,
                "acc": json.dumps({str(k): v for k, v in merged.items()}),
                "err": error,
            },
        )
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
        await self._finish_item(item, json.dumps(record))

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
