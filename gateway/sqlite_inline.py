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
        self._checkpoint_every = checkpoint_every
        self._conn: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpointing: asyncio.Task[tuple[int, int, int]] | None = None
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
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
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
        self._commits += 1
        if self._commits >= self._checkpoint_every and (
            self._checkpointing is None or self._checkpointing.done()
        ):
            self._commits = 0
            self._checkpointing = asyncio.get_running_loop().create_task(self.checkpoint())
        return result

    async def checkpoint(self) -> tuple[int, int, int]:
        """Copy the WAL into the database and restart it, in a worker thread; SQLite's (busy,
        WAL frames, frames checkpointed). Writers wait (sleeping, see :meth:`write`) meanwhile."""
        return await asyncio.to_thread(_checkpoint, self.path)

    async def close(self) -> None:
        """Finish a checkpoint under way, checkpoint once more, close the connection."""
        if self._checkpointing is not None and not self._checkpointing.done():
            await asyncio.wait({self._checkpointing})
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


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _checkpoint(path: str) -> tuple[int, int, int]:
    """PASSIVE copies the WAL without holding anyone up; RESTART then (little left to copy)
    waits up to a second for readers and makes the next writer start the WAL from its
    beginning. PASSIVE alone left that to the writer, which never did it here: the WAL grew by
    ~8 MB a second under load (158 MB in 25 s) although every checkpoint completed."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=1000")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        conn.close()
