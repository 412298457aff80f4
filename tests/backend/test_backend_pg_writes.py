"""The hot changes on PostgreSQL straight to asyncpg (backend/pg_writes.py): the right runner per
database, a change rolled back whole when its body raises, results as SQLAlchemy gives them, and
changes that go on after their pooled connections were killed. (That the rows written equal the
ORM path's is tests/backend/test_backend_core_changes.py, which runs on this writer too.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select

from backend.api import Backend
from backend.db import create_engine
from backend.models import Subscriber
from backend.pg_writes import AsyncpgWriter, ChangeConnection
from backend.services.accounts import LOCK_FOR_CODE
from backend.services.context import LOCK_SUBSCRIBER, _writer_for
from backend.sqlite_writes import InlineSqliteWriter
from tests.conftest import kill_connections

DEMO = "48600000001"


async def test_writer_per_database(tmp_path: Path) -> None:
    cases = [
        (f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", InlineSqliteWriter),
        ("sqlite+aiosqlite://", type(None)),  # in memory: the engine's run_sync
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", AsyncpgWriter),
    ]
    for url, kind in cases:
        engine = create_engine(url)
        writer = _writer_for(engine)
        try:
            assert isinstance(writer, kind), url
        finally:
            if writer is not None:
                writer.close()
            await engine.dispose()


def _lock_and_read(conn: Connection, msisdn: str) -> tuple[Any, ...]:
    """A body reading what the code check reads, under the lock, twice over."""
    locked = conn.execute(LOCK_SUBSCRIBER, {"lock_msisdn": msisdn})
    row = conn.execute(LOCK_FOR_CODE, {"lock_msisdn": msisdn})
    first = row.first()
    missing = conn.execute(LOCK_FOR_CODE, {"lock_msisdn": "48000000000"})
    return locked.rowcount, row.rowcount, first, missing.first(), missing.rowcount


@pytest.mark.postgres
async def test_results_as_sqlalchemy_gives_them(pg_seeded: str) -> None:
    """rowcount from the command status, rows with the same names and processed values (the
    UTC column comes back aware), nothing for no row — on both runners, same database."""
    engine = create_engine(pg_seeded)
    writer = AsyncpgWriter(engine)
    try:
        ours = await writer.run(_lock_and_read, DEMO)
        async with engine.begin() as conn:
            theirs = await conn.run_sync(_lock_and_read, DEMO)
        assert ours[:2] == theirs[:2] == (1, 1)
        assert ours[2]._asdict() == theirs[2]._asdict()
        assert ours[3:] == theirs[3:] == (None, 0)
        assert writer.commits == 1
    finally:
        writer.close()
        await engine.dispose()


class _Boom(Exception):
    pass


def _lock_then_fail(conn: Connection, msisdn: str) -> None:
    conn.execute(LOCK_SUBSCRIBER, {"lock_msisdn": msisdn})  # bumps the row's version
    raise _Boom


async def test_a_failing_body_rolls_the_change_back(backend: Backend, fresh: Any) -> None:
    """On either writer (SQLite inline, PostgreSQL asyncpg)."""
    msisdn = await fresh()

    async def version() -> int:
        async with backend.sessionmaker() as session:
            found = await session.scalar(
                select(Subscriber.version).where(Subscriber.msisdn == msisdn)
            )
            assert found is not None
            return found

    before = await version()
    with pytest.raises(_Boom):
        await backend.context.change(_lock_then_fail, msisdn)
    assert await version() == before
    await backend.context.change(
        lambda conn: conn.execute(LOCK_SUBSCRIBER, {"lock_msisdn": msisdn})
    )
    assert await version() == before + 1


@pytest.mark.postgres
async def test_changes_go_on_after_their_connections_were_killed(pg_seeded: str) -> None:
    from backend.db import open_backend

    async with open_backend(pg_seeded, "test-secret-key") as backend:
        await _after_kill(backend, pg_seeded.rsplit("/", 1)[1])


async def _after_kill(backend: Backend, database: str) -> None:
    assert isinstance(backend.context.writer, AsyncpgWriter)
    await backend.activate(DEMO, "NOCE", "sms")  # the writer's pool is open now
    assert await kill_connections(database) >= 1
    # every pooled connection is dead: each change finds out at BEGIN and begins anew
    for _ in range(3):
        change = await backend.deactivate(DEMO, "NOCE", "sms")
        assert change.changed
        change = await backend.activate(DEMO, "NOCE", "sms")
        assert change.changed
    assert (await backend.deactivate(DEMO, "NOCE", "sms")).changed  # as the demo data had it


def test_change_connection_is_what_the_bodies_use() -> None:
    """The bodies see ``dialect`` and ``execute``; nothing else of a Connection is offered."""
    public = {name for name in vars(ChangeConnection) if not name.startswith("_")}
    assert public == {"execute"}


@pytest.mark.postgres
async def test_a_change_waiting_too_long_for_a_connection_is_transient(pg_seeded: str) -> None:
    """Every connection busy past the acquire timeout: the change fails as the store being away
    (the turn is offered again), as the engine's pool timeout did."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from fsm.runtime import is_transient

    engine = create_engine(pg_seeded)
    writer = AsyncpgWriter(engine, size=1, acquire_timeout=0.2)
    try:
        pool = await writer.pool.get()
        held = await pool.acquire()
        try:
            with pytest.raises(PoolTimeout) as waited:
                await writer.run(_lock_and_read, DEMO)
            assert is_transient(waited.value)
        finally:
            await pool.release(held)
        assert (await writer.run(_lock_and_read, DEMO))[0] == 1  # free again: it goes through
    finally:
        writer.close()
        await engine.dispose()
