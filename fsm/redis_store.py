"""``RedisStore``: dialog records, turn locks and rate counters in Redis, shared by processes.

The lock is ``SET NX PX`` with a random token (host, pid, random part), released and checked by
Lua scripts, so a process only ever releases — or saves under — a lock it still holds; a lock left
by a process of this host that no longer runs is broken at once. Inside one process turns of one
subscriber queue on an ``asyncio.Lock`` first (:class:`fsm.store.LocalLocks`), so the Redis lock
is contended only between processes. :func:`store_from_url` picks the store from the URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.errors import ConfigError
from fsm import constants, keys
from fsm.record import DialogRecord, RecordError
from fsm.redis_batch import ScriptBatch
from fsm.redis_connect import is_redis_url, redis_from_url
from fsm.store import (
    Clock,
    DialogStore,
    LocalLocks,
    LockHandle,
    LockLost,
    LockTimeout,
    MemoryStore,
    TurnStart,
)

log = logging.getLogger(__name__)


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
        self._locks = LocalLocks()
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
    """``None`` or ``memory://`` → ``MemoryStore`` timing expiry with ``clock``; a Redis URL
    (Sentinel included, :mod:`fsm.redis_connect`) → ``RedisStore`` (expiry is Redis's own)."""
    if not url or url.startswith("memory:"):
        return MemoryStore(prefix, clock)
    if is_redis_url(url):
        # A blocking pool: a burst of turns waits for a connection instead of failing with
        # MaxConnectionsError (redis-py's default pool raises at 100 connections).
        client = redis_from_url(
            url,
            blocking=constants.REDIS_CONNECTIONS,
            timeout=constants.LOCK_WAIT,
            # Ride out a Redis restart or a Sentinel failover (~10 s): the turn waits instead
            # of failing half-done.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=25),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        return RedisStore(client, prefix, owns_client=True)
    raise ConfigError(f"IDEA24_REDIS_URL: expected redis://HOST:PORT/DB, got {url!r}")
