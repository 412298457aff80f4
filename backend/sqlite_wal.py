"""What the in-loop SQLite writers share: telling "locked" from other errors, and WAL
checkpoints in a worker thread every so many commits.

Both writers (the outbox's ``gateway.outbox.sqlite_inline.InlineWriter`` and the backend's
``backend.sqlite_writes.InlineSqliteWriter``) turn SQLite's automatic checkpoint off on their
connection, so no commit copies the WAL into the database (an ``fsync``) in the loop thread.
"""

from __future__ import annotations

import asyncio
import sqlite3

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_busy(exc: BaseException) -> bool:
    """A ``sqlite3.OperationalError`` that says the database is locked by another connection."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def checkpoint(path: str) -> tuple[int, int, int]:
    """PASSIVE copies the WAL without holding anyone up; RESTART then (little left to copy) waits
    up to a second for readers and makes the next writer start the WAL from its beginning.
    PASSIVE alone left that to the writer, which never did it under continuous writes: the WAL
    grew by ~8 MB a second (158 MB in 25 s) although every checkpoint completed. Returns
    SQLite's (busy, WAL frames, frames checkpointed)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=1000")
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        row = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        conn.close()


class Checkpoints:
    """Counts a writer's commits; after ``every`` of them starts one checkpoint in a thread
    (never two at once)."""

    def __init__(self, path: str, every: int) -> None:
        self.path = path
        self.every = every
        self._commits = 0
        self._running: asyncio.Task[tuple[int, int, int]] | None = None

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= self.every and (self._running is None or self._running.done()):
            self._commits = 0
            self._running = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> tuple[int, int, int]:
        """One checkpoint now, in a worker thread."""
        return await asyncio.to_thread(checkpoint, self.path)

    async def wait(self) -> None:
        """Let a checkpoint under way finish."""
        if self._running is not None and not self._running.done():
            await asyncio.wait({self._running})
