"""Where dialog records, turn locks and rate counters live.

Theory of operation: a turn takes the subscriber's lock, loads the record, works, saves the record
(state + data + TTL in one write) and releases the lock. ``MemoryStore`` is the embedded default
for one process; ``RedisStore`` is shared by many processes: its lock is ``SET NX PX`` with a
random token, released and checked by Lua scripts, so a process only ever releases — or saves
under — a lock it still holds. Inside one process both stores queue turns of one subscriber on an
``asyncio.Lock`` first (FIFO), so two messages of one subscriber run in arrival order and the
Redis lock is contended only between processes. Idle locks and expired records are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.errors import ConfigError, Idea24Error
from fsm import constants, keys
from fsm.record import DialogRecord, RecordError
from fsm.redis_batch import ScriptBatch

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class LockTimeout(Idea24Error):
    """The subscriber's lock stayed taken for longer than the store waits."""


class LockLost(Idea24Error):
    """The lock expired and was taken by another turn before this one saved: nothing was written."""


@dataclass(slots=True)
class LockHandle:
    """Proof of holding a subscriber's lock; pass it to ``save``/``delete`` as ``guard``."""

    msisdn: str
    token: str
    #: Set when a guarded write already released the lock (the context exit then skips it).
    released: bool = False


@dataclass(slots=True)
class TurnStart:
    """What a turn starts with: the held lock, its rate count, and the subscriber's record.

    ``undecodable`` is set when a record was there but could not be read (it counts as none).
    """

    guard: LockHandle
    hits: int
    record: DialogRecord | None
    undecodable: bool = False


@dataclass(slots=True)
class _LocalLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class _Hold:
    """One hold of a :class:`_LocalLocks` key, as a plain class: a turn enters this on its hot
    path, where a generator-based context manager cost a frame and a generator per use."""

    __slots__ = ("_entry", "_key", "_locks", "_wait")

    def __init__(self, locks: dict[str, _LocalLock], key: str, wait: float) -> None:
        self._locks = locks
        self._key = key
        self._wait = wait

    async def __aenter__(self) -> None:
        entry = self._locks.get(self._key)
        if entry is None:
            entry = self._locks[self._key] = _LocalLock()
        entry.users += 1
        try:
            if entry.users == 1 and not entry.lock.locked():
                await entry.lock.acquire()  # nobody holds or waits: no timer needed (hot path)
            else:
                try:
                    async with asyncio.timeout(self._wait):
                        await entry.lock.acquire()
                except TimeoutError as exc:
                    raise LockTimeout(f"turn lock busy for {self._wait:.0f}s") from exc
        except BaseException:
            self._leave(entry)
            raise
        self._entry = entry

    async def __aexit__(self, *exc_info: object) -> None:
        entry = self._entry
        try:
            entry.lock.release()
        finally:
            self._leave(entry)

    def _leave(self, entry: _LocalLock) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._locks[self._key]


class _LocalLocks:
    """FIFO per-key asyncio locks, each dropped as soon as nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, _LocalLock] = {}

    def hold(self, key: str, wait: float) -> _Hold:
        """Hold ``key``'s lock for the ``async with`` body; ``LockTimeout`` after ``wait``."""
        return _Hold(self._locks, key, wait)

    def __len__(self) -> int:
        return len(self._locks)


class DialogStore(ABC):
    """Per-subscriber dialog records, the turn lock and rate counters."""

    def __init__(self, prefix: str = constants.DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    @abstractmethod
    def lock(
        self, msisdn: str, *, wait: float = constants.LOCK_WAIT
    ) -> AbstractAsyncContextManager[LockHandle]:
        """Hold the subscriber's turn lock (cross-process on Redis); raises ``LockTimeout``."""

    @abstractmethod
    async def load(self, msisdn: str, dialog: str = "sms") -> DialogRecord | None: ...

    @abstractmethod
    async def save(
        self,
        msisdn: str,
        record: DialogRecord,
        ttl: float,
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None:
        """Write record and TTL in one call; with ``guard``, only while that lock is held
        (``release=True`` also releases it in the same call: the turn's last write)."""

    @abstractmethod
    async def delete(
        self,
        msisdn: str,
        dialog: str = "sms",
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None: ...

    def open_turn(
        self,
        msisdn: str,
        dialog: str,
        rate_key: str,
        window: float,
        *,
        wait: float = constants.LOCK_WAIT,
    ) -> AbstractAsyncContextManager[TurnStart]:
        """Hold the lock, then count the turn and load the record: :meth:`lock` followed by
        :meth:`hit` and :meth:`load` (load after the lock), in one round trip on Redis when the
        lock is free. The record is written (and the lock released) by ``save``/``delete`` with
        ``guard``, or the lock is released on exit."""
        return self._open_turn(msisdn, dialog, rate_key, window, wait)

    @asynccontextmanager
    async def _open_turn(
        self, msisdn: str, dialog: str, rate_key: str, window: float, wait: float
    ) -> AsyncIterator[TurnStart]:
        async with self.lock(msisdn, wait=wait) as guard:
            yield await self._loaded(guard, dialog, rate_key, window)

    async def _loaded(
        self, guard: LockHandle, dialog: str, rate_key: str, window: float
    ) -> TurnStart:
        hits = await self.hit(rate_key, window)
        try:
            return TurnStart(guard, hits, await self.load(guard.msisdn, dialog))
        except RecordError:
            return TurnStart(guard, hits, None, undecodable=True)

    @abstractmethod
    async def hit(self, key: str, window: float) -> int:
        """Count one event in the fixed ``window`` (seconds) that the first hit opened."""

    async def aclose(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections; the store is unusable afterwards."""


class MemoryStore(DialogStore):
    """The embedded store: one process, dicts with expiry; ``clock`` is injectable for tests."""

    SWEEP_EVERY = 256

    def __init__(self, prefix: str = constants.DEFAULT_PREFIX, clock: Clock = time.monotonic):
        super().__init__(prefix)
        self._clock = clock
        self._values: dict[str, tuple[bytes, float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._locks = _LocalLocks()
        self._writes = 0

    def lock(
        self, msisdn: str, *, wait: float = constants.LOCK_WAIT
    ) -> AbstractAsyncContextManager[LockHandle]:
        return _MemoryTurn(self, msisdn, wait, None)

    def open_turn(
        self,
        msisdn: str,
        dialog: str,
        rate_key: str,
        window: float,
        *,
        wait: float = constants.LOCK_WAIT,
    ) -> AbstractAsyncContextManager[TurnStart]:
        return _MemoryTurn(self, msisdn, wait, (dialog, rate_key, window))

    def _get(self, key: str) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._values[key]
            return None
        return item[0]

    def _put(self, key: str, value: bytes, ttl: float) -> None:
        self._values[key] = (value, self._clock() + ttl)
        self._writes += 1
        if self._writes % self.SWEEP_EVERY == 0:
            self.sweep()

    def sweep(self) -> int:
        """Drop everything expired; returns how many entries went."""
        now = self._clock()
        dead = [k for k, (_, exp) in self._values.items() if exp <= now]
        for k in dead:
            del self._values[k]
        gone = [k for k, (_, exp) in self._counters.items() if exp <= now]
        for k in gone:
            del self._counters[k]
        return len(dead) + len(gone)

    async def load(self, msisdn: str, dialog: str = "sms") -> DialogRecord | None:
        raw = self._get(keys.session(self.prefix, msisdn, dialog))
        return None if raw is None else DialogRecord.decode(raw)

    async def save(
        self,
        msisdn: str,
        record: DialogRecord,
        ttl: float,
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None:
        # In one process the lock cannot expire under a turn: the guard needs no check.
        self._put(keys.session(self.prefix, msisdn, record.dialog), record.encode(), ttl)

    async def delete(
        self,
        msisdn: str,
        dialog: str = "sms",
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None:
        self._values.pop(keys.session(self.prefix, msisdn, dialog), None)

    async def hit(self, key: str, window: float) -> int:
        full = keys.prefixed(self.prefix, key)
        now = self._clock()
        count, reset = self._counters.get(full, (0, 0.0))
        if reset <= now:
            count, reset = 0, now + window
        self._counters[full] = (count + 1, reset)
        return count + 1

    @property
    def idle_locks(self) -> int:
        """How many lock entries exist (0 when no turn runs): idle locks are dropped."""
        return len(self._locks)

    def __len__(self) -> int:
        return len(self._values)


#: Lock tokens start with the host name and pid of the process holding them.
_OWNER_PREFIX = f"{socket.gethostname()}-"


def _left_by_gone_process(token: str) -> bool:
    """A token of a process of this host (``host-pid-…``) that no longer runs."""
    if not token.startswith(_OWNER_PREFIX):
        return False
    pid = token[len(_OWNER_PREFIX) :].partition("-")[0]
    return pid.isdigit() and _process_gone(int(pid))


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Save (or delete) the record only while the lock still holds our token: load-check-save.
# ARGV[4] == '1' releases the lock in the same call (the turn's last write).
_GUARDED_SAVE = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if ARGV[3] ~= '' and ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
return 1
"""
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""
# The turn's first read: count it for the rate limit and load the record (same hash slot).
_HIT_LOAD = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('GET', KEYS[2])}
"""


# A turn's first call: take the lock and, only if it was free, count the turn and load the record
# (all keys of one subscriber share a hash slot). Returns {1, hits, record} or {0}.
_LOCK_HIT_LOAD = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return {1, n, redis.call('GET', KEYS[3])}
"""


def _start(guard: LockHandle, hits: int, raw: bytes | None) -> TurnStart:
    try:
        return TurnStart(guard, hits, None if raw is None else DialogRecord.decode(raw))
    except RecordError:
        return TurnStart(guard, hits, None, undecodable=True)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class _MemoryTurn:
    """``MemoryStore.lock`` (``turn`` None) and ``open_turn`` (``turn`` = dialog, rate key,
    window) as one plain class: the generic versions nest three generator-based context
    managers per turn; same order here (lock, then count and load), the lock released on exit
    or when loading fails."""

    __slots__ = ("_hold", "_msisdn", "_store", "_turn", "_wait")

    def __init__(
        self, store: MemoryStore, msisdn: str, wait: float, turn: tuple[str, str, float] | None
    ) -> None:
        self._store = store
        self._msisdn = msisdn
        self._turn = turn
        self._wait = wait

    async def __aenter__(self) -> Any:
        store = self._store
        self._hold = store._locks.hold(keys.lock(store.prefix, self._msisdn), self._wait)
        await self._hold.__aenter__()
        guard = LockHandle(self._msisdn, "local")
        if self._turn is None:
            return guard
        try:
            return await store._loaded(guard, *self._turn)
        except BaseException as exc:
            await self._hold.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self._hold.__aexit__(*exc_info)


class RedisStore(DialogStore):
    """The shared store: any number of processes, one Redis (or Redis Cluster: keys are tagged)."""

    def __init__(
        self,
        client: Any,
        prefix: str = constants.DEFAULT_PREFIX,
        *,
        lock_ttl: float = constants.LOCK_TTL,
        owns_client: bool = False,
    ) -> None:
        super().__init__(prefix)
        self._redis = client
        self._owns = owns_client
        self._lock_ttl = lock_ttl
        self._locks = _LocalLocks()
        #: Marks this store's own tokens: a lock carrying it that this process's local lock does
        #: not cover was left by one of our own turns (Redis died before it could release).
        self._mine = f"{_OWNER_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self._batch = ScriptBatch(client)
        register = self._batch.register  # a tick's calls of these go as one script call
        self._release = register(_RELEASE)
        self._guarded = register(_GUARDED_SAVE)
        self._hit = register(_HIT)
        self._hit_load = register(_HIT_LOAD)
        self._lock_hit_load = register(_LOCK_HIT_LOAD)

    def _token(self) -> str:
        return f"{self._mine}{secrets.token_hex(8)}"

    @asynccontextmanager
    async def _lock(self, msisdn: str, wait: float) -> AsyncIterator[LockHandle]:
        key = keys.lock(self.prefix, msisdn)
        deadline = asyncio.get_running_loop().time() + wait
        async with (
            self._locks.hold(key, wait),
            self._remote_lock(key, msisdn, deadline, wait) as handle,
        ):
            yield handle

    @asynccontextmanager
    async def _remote_lock(
        self, key: str, msisdn: str, deadline: float, wait: float
    ) -> AsyncIterator[LockHandle]:
        """The Redis lock (``SET NX PX``, back-off, orphan check), released on exit unless a
        guarded write did; the caller already holds this process's local lock."""
        loop = asyncio.get_running_loop()
        token = self._token()
        delay = 0.002
        checked = False
        while not await self._redis.set(key, token, nx=True, px=_ms(self._lock_ttl)):
            if not checked:  # once per turn: only when someone holds the lock
                checked = True
                if await self._break_orphaned(key):
                    continue
            if loop.time() + delay > deadline:
                raise LockTimeout(f"turn lock busy for {wait:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        handle = LockHandle(msisdn, token)
        try:
            yield handle
        finally:
            if not handle.released:
                await self._batch.call(self._release, [key], [token])

    def lock(
        self, msisdn: str, *, wait: float = constants.LOCK_WAIT
    ) -> AbstractAsyncContextManager[LockHandle]:
        return self._lock(msisdn, wait)

    @asynccontextmanager
    async def _open_turn(
        self, msisdn: str, dialog: str, rate_key: str, window: float, wait: float
    ) -> AsyncIterator[TurnStart]:
        key = keys.lock(self.prefix, msisdn)
        deadline = asyncio.get_running_loop().time() + wait
        async with self._locks.hold(key, wait):
            token = self._token()
            taken = await self._batch.call(
                self._lock_hit_load,
                [
                    key,
                    keys.prefixed(self.prefix, rate_key),
                    keys.session(self.prefix, msisdn, dialog),
                ],
                [token, _ms(self._lock_ttl), _ms(window)],
            )
            if not int(taken[0]):
                # Another process holds it: wait the usual way (orphan check, back-off).
                async with self._remote_lock(key, msisdn, deadline, wait) as guard:
                    yield await self._loaded(guard, dialog, rate_key, window)
                return
            guard = LockHandle(msisdn, token)
            try:
                yield _start(guard, int(taken[1]), taken[2])
            finally:
                if not guard.released:
                    await self._batch.call(self._release, [key], [token])

    async def _break_orphaned(self, key: str) -> bool:
        """Delete a lock nobody runs a turn under, so its subscriber need not wait ``lock_ttl``:
        one left by a process of this host that no longer runs (killed mid-turn), or one of this
        store's own (a turn whose release Redis never got: restarted from its append-only file,
        or a command executed whose answer was lost). The caller holds this process's local lock
        for ``key``, so no turn of ours holds the Redis lock legitimately."""
        holder = await self._redis.get(key)
        if holder is None:
            return True
        text = holder.decode() if isinstance(holder, bytes) else str(holder)
        if text.startswith(self._mine):
            log.warning("breaking a turn lock this process left behind")
        elif not _left_by_gone_process(text):
            return False
        return bool(await self._batch.call(self._release, [key], [text]))

    async def load(self, msisdn: str, dialog: str = "sms") -> DialogRecord | None:
        raw = await self._redis.get(keys.session(self.prefix, msisdn, dialog))
        return None if raw is None else DialogRecord.decode(raw)

    async def _write(
        self,
        msisdn: str,
        dialog: str,
        value: bytes,
        ttl: float,
        guard: LockHandle | None,
        release: bool,
    ) -> None:
        session = keys.session(self.prefix, msisdn, dialog)
        token = guard.token if guard is not None else ""
        done = await self._batch.call(
            self._guarded,
            [session, keys.lock(self.prefix, msisdn)],
            [value, _ms(ttl), token, "1" if release else "0"],
        )
        if not done:
            raise LockLost("the turn lock expired before the record was written")
        if guard is not None and release:
            guard.released = True

    async def save(
        self,
        msisdn: str,
        record: DialogRecord,
        ttl: float,
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None:
        await self._write(msisdn, record.dialog, record.encode(), ttl, guard, release)

    async def delete(
        self,
        msisdn: str,
        dialog: str = "sms",
        *,
        guard: LockHandle | None = None,
        release: bool = False,
    ) -> None:
        await self._write(msisdn, dialog, b"", 1, guard, release)

    async def _hit_load_raw(
        self, msisdn: str, dialog: str, rate_key: str, window: float
    ) -> tuple[int, bytes | None]:
        hits, raw = await self._batch.call(
            self._hit_load,
            [keys.prefixed(self.prefix, rate_key), keys.session(self.prefix, msisdn, dialog)],
            [_ms(window)],
        )
        return int(hits), raw

    async def _loaded(
        self, guard: LockHandle, dialog: str, rate_key: str, window: float
    ) -> TurnStart:
        hits, raw = await self._hit_load_raw(guard.msisdn, dialog, rate_key, window)
        return _start(guard, hits, raw)

    async def hit(self, key: str, window: float) -> int:
        return int(
            await self._batch.call(self._hit, [keys.prefixed(self.prefix, key)], [_ms(window)])
        )

    async def aclose(self) -> None:
        await self._batch.aclose()
        if self._owns:
            await self._redis.aclose()


def store_from_url(
    url: str | None, prefix: str = constants.DEFAULT_PREFIX, clock: Clock = time.monotonic
) -> DialogStore:
    """``None`` or ``memory://`` → ``MemoryStore`` timing expiry with ``clock``; a ``redis://``
    URL → ``RedisStore`` (expiry is Redis's own)."""
    if not url or url.startswith("memory:"):
        return MemoryStore(prefix, clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        # A blocking pool: a burst of turns waits for a connection instead of failing with
        # MaxConnectionsError (redis-py's default pool raises at 100 connections).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=constants.REDIS_CONNECTIONS,
            timeout=constants.LOCK_WAIT,
            # Ride out a Redis restart (~10 s): the turn waits instead of failing half-done.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=25),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        return RedisStore(aioredis.Redis.from_pool(pool), prefix, owns_client=True)
    raise ConfigError(f"IDEA24_REDIS_URL: expected redis://HOST:PORT/DB, got {url!r}")
