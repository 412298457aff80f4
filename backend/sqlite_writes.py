"""The hot change transactions on a SQLite file, run in the event-loop thread without blocking it.

Why: through aiosqlite every statement of a change is about three hand-offs to its worker thread
and back, plus the commit and the pool's reset: 14 hops for an activation, ~1-1.4 ms of CPU. The
same statements on a synchronous SQLAlchemy ``Connection`` over a plain ``sqlite3`` connection,
in the loop thread, cost a fifth of that; a WAL commit with ``synchronous=NORMAL`` does not wait
for the disk. The transaction's logic is one function of a synchronous ``Connection``
(:meth:`InlineSqliteWriter.run` here; ``AsyncConnection.run_sync`` for PostgreSQL and an
in-memory SQLite database), so the two paths cannot drift.

What could block the loop is kept out of it, as in the outbox's ``gateway.outbox.sqlite_inline``:
- *Locks.* The connection has ``busy_timeout=0``: when another connection (aiosqlite's thread in
  the middle of an ORM change, another process) holds the write lock, ``BEGIN IMMEDIATE`` fails
  at once; the transaction is rolled back and retried whole after an ``asyncio.sleep`` back-off
  (1 → 50 ms), for up to ``busy_wait`` seconds (the engine's busy timeout), then
  :class:`WriteLockTimeout`. A body never awaits, so the transaction never spans a loop turn and
  two changes of one process never interleave on the connection.
- *Checkpoints.* ``wal_autocheckpoint=0`` on this connection: a commit never copies the WAL into
  the database in the loop thread; a worker thread does it on a connection of its own after
  ``checkpoint_every`` commits (PASSIVE, then RESTART so the WAL starts over).

The connection also has ``foreign_keys=ON``, as the engine's, so a change checks what it
checked through aiosqlite. (``gateway.outbox.sqlite_inline.InlineWriter`` is not reused: the
backend is below the gateway, and its connection is a bare ``sqlite3`` one without foreign keys.)
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from backend.errors import Idea24Error
from backend.sqlite_wal import Checkpoints, is_busy

P = ParamSpec("P")
T = TypeVar("T")

#: Seconds a change waits for another connection's write lock (the engine's busy timeout).
BUSY_WAIT = 10.0
#: Commits between two WAL checkpoints.
CHECKPOINT_EVERY = 500


class WriteLockTimeout(Idea24Error):
    """Another connection held the SQLite write lock for longer than the writer waits."""


class InlineSqliteWriter:
    """One synchronous SQLAlchemy connection on a SQLite file for the changes of one loop."""

    def __init__(
        self,
        url: URL,
        *,
        busy_wait: float = BUSY_WAIT,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.path = str(url.database)
        self._busy_wait = busy_wait
        self._engine: Engine = create_engine(
            url.set(drivername="sqlite"),
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
        event.listen(self._engine, "connect", self._pragmas)
        self._conn: Connection | None = None
        self._raw: sqlite3.Connection | None = None  # its sqlite3 connection
        self._checkpoints = Checkpoints(self.path, checkpoint_every)
        self.busy_waits = 0  # how often a change found the lock taken (tests, metrics)

    def _pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: run() begins
        wait_ms = int(self._busy_wait * 1000)
        for pragma in (
            f"busy_timeout={wait_ms}",  # setting WAL may wait for another writer (in a thread)
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "wal_autocheckpoint=0",
            "busy_timeout=0",  # from now on run() waits, not SQLite
        ):
            dbapi_connection.execute(f"PRAGMA {pragma}").fetchall()

    async def _connection(self) -> Connection:
        opened = await asyncio.to_thread(self._engine.connect)
        if self._conn is None:
            self._conn = opened
            self._raw = opened.connection.driver_connection
        else:  # another change opened it meanwhile
            opened.close()
        return self._conn

    async def run(
        self, body: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``body(connection, ...)`` in one ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if it
        raises; rolled back and retried whole (after a sleep) while the database is locked."""
        conn = self._conn or await self._connection()
        raw = self._raw
        assert raw is not None
        deadline = time.monotonic() + self._busy_wait
        delay = 0.001
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn, *args, **kwargs)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            except (sqlite3.OperationalError, DBAPIError) as exc:
                if not is_busy(getattr(exc, "orig", None) or exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WriteLockTimeout(
                        f"{self.path}: the write lock stayed taken for {self._busy_wait:g} s"
                    ) from exc
                self.busy_waits += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            break
        self._checkpoints.committed()
        return result

    async def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database and restart it, in a worker thread; SQLite's (busy,
        WAL frames, frames checkpointed). Changes wait (sleeping, see :meth:`run`) meanwhile."""
        return await self._checkpoints.run()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = self._raw = None
        self._engine.dispose()
