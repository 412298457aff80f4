"""The hot changes on a SQLite file run in the loop thread (backend/sqlite_writes.py): they wait
out another connection's write lock without blocking the loop, give up with a clear error after
the writer's wait, and two processes changing one number still leave one consistent row."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from backend.api import Backend
from backend.models import ActiveService, AuditEntry, Charge, Subscriber
from backend.sqlite_writes import InlineSqliteWriter, WriteLockTimeout

SECRET = "test-secret-key"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(sqlite_template: Path, tmp_path: Path) -> str:
    """Only a SQLite file here (inline changes are for one): this overrides the package's
    fixture, which also runs every test on PostgreSQL."""
    target = tmp_path / "idea24.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def sqlite_path(db_url: str) -> Path:
    database = make_url(db_url).database
    assert database is not None
    return Path(database)


def _replace_writer(backend: Backend, db_url: str, **options: Any) -> InlineSqliteWriter:
    """The backend's inline writer, closed and replaced by one with other ``options``."""
    ctx = backend.context
    assert ctx.writer is not None
    ctx.writer.close()
    ctx.writer = InlineSqliteWriter(make_url(db_url), **options)
    return ctx.writer


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not within 30 s")


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection in the middle of a write transaction."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE subscribers SET version = version WHERE 0")
    return holder


async def test_a_change_waits_out_a_write_lock_without_blocking_the_loop(
    sqlite_path: Path, backend: Backend, fresh: Any
) -> None:
    msisdn = await fresh(code="424242")
    writer = backend.context.writer
    assert isinstance(writer, InlineSqliteWriter)
    await backend.deactivate(msisdn, "NOCE", "sms")  # the writer's connection is open
    holder = _hold_write_lock(sqlite_path)
    try:
        changes = asyncio.gather(
            backend.activate(msisdn, "NOCE", "sms"),
            backend.check_subscriber_code(msisdn, "424242"),
        )
        # The lock is released only by this loop: a change that waited inside SQLite would
        # keep it from ever getting here (and fail after the busy timeout).
        await _until(lambda: writer.busy_waits >= 3)
        assert not changes.done()
    finally:
        holder.execute("COMMIT")
        holder.close()
    activated, _ = await asyncio.wait_for(changes, timeout=30)
    assert activated.changed
    async with backend.sessionmaker() as session:
        active = await session.scalars(
            select(ActiveService.service_code).where(ActiveService.msisdn == msisdn)
        )
        assert list(active) == ["NOCE"]


async def test_a_lock_held_too_long_is_a_clear_error_and_writes_nothing(
    sqlite_path: Path, backend: Backend, fresh: Any, db_url: str
) -> None:
    msisdn = await fresh()
    writer = _replace_writer(backend, db_url, busy_wait=0.05)
    await backend.activate(msisdn, "MMS", "sms")
    holder = _hold_write_lock(sqlite_path)
    try:
        with pytest.raises(WriteLockTimeout, match="write lock"):
            await backend.activate(msisdn, "NOCE", "sms")
        assert writer.busy_waits > 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    async with backend.sessionmaker() as session:
        active = await session.scalars(
            select(ActiveService.service_code).where(ActiveService.msisdn == msisdn)
        )
        assert list(active) == ["MMS"]
    assert (await backend.activate(msisdn, "NOCE", "sms")).changed  # the writer still works


async def test_an_orm_change_and_an_inline_change_of_one_number(
    sqlite_path: Path, backend: Backend, fresh: Any
) -> None:
    """An ORM transaction through aiosqlite holding the lock across awaits, an inline change
    meanwhile: the inline one waits (sleeping), then sees the ORM one's commit."""
    msisdn = await fresh()
    writer = backend.context.writer
    assert isinstance(writer, InlineSqliteWriter)
    async with backend.sessionmaker.begin() as session:
        await session.execute(
            update(Subscriber)
            .where(Subscriber.msisdn == msisdn)
            .values(version=Subscriber.version + 1)
        )
        session.add(
            ActiveService(
                msisdn=msisdn, service_code="NOCE", activated_at=datetime.now(UTC), numbers=[]
            )
        )
        waiting = asyncio.ensure_future(backend.activate(msisdn, "NOCE", "sms"))
        await _until(lambda: writer.busy_waits > 0)
        assert not waiting.done()
        await session.flush()
    assert not (await asyncio.wait_for(waiting, timeout=30)).changed


_WORKER = """
import asyncio, sys
from backend.db import open_backend

async def main(url, msisdn, rounds):
    on = off = 0
    async with open_backend(url, {secret!r}) as backend:
        await backend.service(msisdn, "NOCE")
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(rounds):
            on += (await backend.activate(msisdn, "NOCE", "sms")).changed
            off += (await backend.deactivate(msisdn, "NOCE", "sms")).changed
    print(on, off, backend.context.writer.busy_waits)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def test_two_processes_changing_one_number_give_one_row(
    sqlite_path: Path, backend: Backend, fresh: Any, db_url: str
) -> None:
    msisdn = await fresh()
    rounds = 150
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER.format(secret=SECRET),
        db_url,
        msisdn,
        str(rounds),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert worker.stdin is not None and worker.stdout is not None
    assert await asyncio.wait_for(worker.stdout.readline(), timeout=60) == b"ready\n"
    worker.stdin.write(b"go\n")
    on = off = 0
    for _ in range(rounds):
        on += (await backend.activate(msisdn, "NOCE", "sms")).changed
        off += (await backend.deactivate(msisdn, "NOCE", "sms")).changed
        await asyncio.sleep(0)
    out, _ = await asyncio.wait_for(worker.communicate(), timeout=120)
    assert worker.returncode == 0
    their_on, their_off, _busy_waits = map(int, out.split())
    on, off = on + their_on, off + their_off
    async with backend.sessionmaker() as session:
        active = await session.scalar(
            select(func.count()).select_from(ActiveService).where(ActiveService.msisdn == msisdn)
        )
        charges = await session.scalar(
            select(func.count()).select_from(Charge).where(Charge.msisdn == msisdn)
        )
        actions = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.msisdn == msisdn).order_by(AuditEntry.id)
            )
        )
        sub = await session.get(Subscriber, msisdn)
    assert sub is not None
    assert on >= 1 and on - off == active and active in (0, 1)
    assert charges == on
    assert actions.count("activate") == on and actions.count("deactivate") == off
    # on and off alternate in commit order, whichever process made them
    assert actions == ["activate", "deactivate"] * off + ["activate"] * active
    assert sub.version == 4 * rounds  # every call took the lock once


async def test_the_writer_checkpoints_in_a_thread(
    sqlite_path: Path, backend: Backend, fresh: Any, db_url: str
) -> None:
    msisdn = await fresh()
    writer = _replace_writer(backend, db_url, checkpoint_every=4)
    for _ in range(2):
        await backend.activate(msisdn, "NOCE", "sms")
        await backend.deactivate(msisdn, "NOCE", "sms")
    checkpointing = writer._checkpoints._running
    assert checkpointing is not None
    busy, frames, copied = await asyncio.wait_for(checkpointing, timeout=30)
    assert busy == 0 and frames == copied
    assert (await backend.activate(msisdn, "NOCE", "sms")).changed  # the WAL starts over
