"""Where dialog records, turn locks and rate counters live: the interface and the memory store.

Theory of operation: a turn takes the subscriber's lock, loads the record, works, saves the record
(state + data + TTL in one write) and releases the lock. ``MemoryStore`` (here) is the embedded
default for one process; ``fsm.redis_store.RedisStore`` is shared by many processes. Inside one
process both stores queue turns of one subscriber on an ``asyncio.Lock`` first (FIFO,
:class:`LocalLocks`), so two messages of one subscriber run in arrival order and the Redis lock is
contended only between processes. Idle locks and expired records are dropped.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from backend.errors import Idea24Error
from fsm import constants, keys
from fsm.record import DialogRecord, RecordError

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


class LocalLocks:
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
        self._locks = LocalLocks()
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
