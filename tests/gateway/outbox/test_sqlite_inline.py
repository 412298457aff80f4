"""gateway.outbox.sqlite_inline: writes in the loop thread that wait for another connection's lock
without blocking the loop, roll back on error, and checkpoint the WAL off the loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from gateway.outbox.sqlite_inline import InlineWriter


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.close()
    return path


def _rows(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY id")]
    finally:
        conn.close()


async def test_a_write_waits_for_another_writer_without_blocking_the_loop(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = InlineWriter(path)
    await writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('first')"))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    other.execute("INSERT INTO t (v) VALUES ('other')")
    writing = asyncio.create_task(
        writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('mine')"))
    )
    ticks = 0
    while writer.busy_waits < 3:  # the loop keeps running while the write waits
        await asyncio.sleep(0.001)
        ticks += 1
    assert not writing.done() and ticks >= 3
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(writing, 5)
    assert _rows(path) == ["first", "other", "mine"], "the write went in after the other's"
    await writer.close()


async def test_a_lock_held_too_long_fails_the_write(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = InlineWriter(path, busy_wait=0.05)
    await writer.write(lambda c: None)  # opened
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('x')"))
    other.execute("ROLLBACK")
    other.close()
    await writer.close()


async def test_work_that_raises_is_rolled_back(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = InlineWriter(path)

    def half(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t (v) VALUES ('half')")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await writer.write(half)
    await writer.write(lambda c: c.execute("INSERT INTO t (v) VALUES ('whole')"))
    assert _rows(path) == ["whole"]
    await writer.close()


async def test_the_wal_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    path = _db(tmp_path)
    writer = InlineWriter(path, checkpoint_every=10)
    for i in range(9):
        await writer.write(lambda c, i=i: c.execute("INSERT INTO t (v) VALUES (?)", (str(i),)))
    busy, frames, done = await writer.checkpoint()
    assert busy == 0 and frames > 0 and done == frames, "our commits left the WAL to us"
    for i in range(10):  # the tenth commit starts a checkpoint by itself
        await writer.write(lambda c, i=i: c.execute("INSERT INTO t (v) VALUES (?)", (str(i),)))
    assert writer._checkpoints._running is not None
    result = await writer._checkpoints._running
    assert result[0] == 0 and result[1] == result[2]
    await writer.close()
    assert len(_rows(path)) == 19


async def test_the_outbox_take_skips_rows_in_flight_inside_its_indexes(tmp_path: Path) -> None:
    """The inline take must not read every reply being sent (hundreds under load), nor every
    queued row per candidate: the plan goes through (state, lease_until) and (msisdn, id)."""
    from backend.db import create_engine
    from gateway.outbox.sql import _INLINE_CHOOSE, SqlOutbox

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    box = SqlOutbox(engine)
    await box.create()
    conn = sqlite3.connect(tmp_path / "o.db")
    try:
        plan = " | ".join(
            r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + _INLINE_CHOOSE, (0, 0, 1))
        )
    finally:
        conn.close()
    assert "ix_outbox_state_lease (state=? AND lease_until<?)" in plan, plan
    assert "ix_outbox_msisdn_id (msisdn=? AND id<?)" in plan, plan
    await box.close()
    await engine.dispose()


async def test_an_older_outbox_table_gets_the_new_index(tmp_path: Path) -> None:
    from backend.db import create_engine
    from gateway.outbox.sql import SqlOutbox

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    await SqlOutbox(engine).create()
    conn = sqlite3.connect(tmp_path / "o.db")
    conn.execute("DROP INDEX ix_outbox_state_lease")  # as a table made before the index
    conn.close()
    await SqlOutbox(engine).create()
    conn = sqlite3.connect(tmp_path / "o.db")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "ix_outbox_state_lease" in names
    await engine.dispose()


async def test_the_wal_stays_bounded_while_a_reader_reads(tmp_path: Path) -> None:
    """Commits go on while each checkpoint runs (as under load), a reader in between: the
    checkpoints restart the WAL, so its file stops growing. With PASSIVE checkpoints alone it
    grew by every round (nothing ever found it fully copied with no writer behind)."""
    path = _db(tmp_path)
    writer = InlineWriter(path, checkpoint_every=10**9)  # checkpoints only where this test says
    reader = sqlite3.connect(path)
    wal = f"{path}-wal"

    async def commits(n: int) -> None:
        for i in range(n):
            await writer.write(
                lambda c: (
                    c.execute("INSERT INTO t (v) VALUES (?)", ("x" * 500,)),
                    c.execute("DELETE FROM t WHERE id < (SELECT max(id) - 20 FROM t)"),
                )
            )
            if i % 3 == 0:
                reader.execute("SELECT count(*) FROM t").fetchall()
            await asyncio.sleep(0)

    sizes = []
    for _ in range(8):
        await commits(100)
        await asyncio.gather(writer.checkpoint(), commits(100))
        sizes.append(os.path.getsize(wal))  # noqa: ASYNC240 - a stat, in a test
    reader.close()
    await writer.close()
    assert sizes[-1] <= 1.5 * sizes[2], sizes
