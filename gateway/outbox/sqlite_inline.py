"""Short SQLite write transactions run in the event-loop thread, never blocking it on a lock.

Why: through SQLAlchemy and aiosqlite the outbox's put + take + done cost ~118 µs of CPU per
reply (statement compilation and parameter processing, three thread hand-offs per transaction,
the worker thread's own Python), the same statements on a plain ``sqlite3`` connection ~28 µs.
A WAL commit with ``synchronous=NORMAL`` does not wait for the disk, so a transaction of a few
rows takes tens of microseconds — less than handing it to a thread.

What could block the loop is kept out of it:
- *Locks.* The connection has ``busy_timeout=0``: when another connection (the backend's
  aiosqlite thread in the middle of a write, another process) holds the write lock,
  ``BEGIN IMMEDIATE`` fails at once and the writer sleeps with back-off (1 → 50 ms, up to
  ``busy_wait`` s in all) instead of spinning in SQLite's busy handler.
- *Checkpoints.* ``wal_autocheckpoint=0`` on this connection: a commit never copies the WAL into
  the database (an ``fsync``) in the loop thread. :meth:`InlineWriter.checkpoint` does it in a
  worker thread on a connection of its own, and runs by itself after ``checkpoint_every``
  commits (the other connections of the process keep their automatic checkpoints); it also
  restarts the WAL, so the file stays at about ``checkpoint_every`` commits' worth.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from backend.sqlite_wal import Checkpoints, is_busy

T = TypeVar("T")

#: Seconds a write waits for another connection's lock before giving up (as the engine's).
BUSY_WAIT = 10.0
#: Commits between two WAL checkpoints (~1,000 WAL pages at a few rows per commit).
CHECKPOINT_EVERY = 500


class InlineWriter:
    """One plain ``sqlite3`` connection for short write transactions of one event loop."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_wait: float = BUSY_WAIT,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.path = str(path)
        self._busy_wait = busy_wait
        self._conn: sqlite3.Connection | None = None
        self._checkpoints = Checkpoints(self.path, checkpoint_every)
        self.busy_waits = 0  # how often a write found the lock taken (tests, metrics)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back if it raises)."""
        conn = self._conn
        if conn is None:  # opened in a thread: setting WAL may wait for another writer
            opened = await asyncio.to_thread(_open, self.path, self._busy_wait)
            if self._conn is None:
                self._conn = opened
            else:  # another write opened one meanwhile
                opened.close()
            conn = self._conn
        deadline = time.monotonic() + self._busy_wait
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
                self.busy_waits += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._checkpoints.committed()
        return result

    async def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database and restart it, in a worker thread; SQLite's (busy,
        WAL frames, frames checkpointed). Writers wait (sleeping, see :meth:`write`) meanwhile."""
        return await self._checkpoints.run()

    async def close(self) -> None:
        """Finish a checkpoint under way, checkpoint once more, close the connection."""
        await self._checkpoints.wait()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            await self.checkpoint()


def _open(path: str, busy_wait: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_wait * 1000)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA busy_timeout=0")  # from now on the writer waits, not SQLite
    return conn
