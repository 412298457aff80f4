"""Migrations build the models' schema on an empty database; seeding is idempotent."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select, text

from backend.db import create_engine, normalise_url, open_backend
from backend.errors import ConfigError
from backend.manage import seed, upgrade
from backend.models import Base, InvoiceRow, Subscriber
from backend.seed import DEMO

SECRET = "migration-secret"


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from backend.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _check_fresh_upgrade(url: str) -> None:
    await upgrade(url)
    await upgrade(url)  # a second upgrade is a no-op
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            assert version == _head()
    finally:
        await engine.dispose()


async def test_upgrade_empty_sqlite(tmp_path: Path) -> None:
    await _check_fresh_upgrade(f"sqlite+aiosqlite:///{tmp_path}/new.db")
    assert (tmp_path / "new.db").exists()


@pytest.mark.postgres
async def test_upgrade_empty_postgres(postgres_url: str) -> None:
    import asyncpg

    name = f"idea24_mig_{secrets.token_hex(4)}"
    admin = postgres_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    try:
        await _check_fresh_upgrade(url)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def test_sqlite_is_wal_with_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert int(await connection.scalar(text("PRAGMA busy_timeout")) or 0) >= 1000
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        await engine.dispose()


def test_urls_pick_async_drivers() -> None:
    assert normalise_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ConfigError, match="IDEA24_DATABASE_URL"):
        normalise_url("mysql://u:secret@h/db")
    with pytest.raises(ConfigError) as info:
        normalise_url("::not a url::")
    assert "secret" not in str(info.value)


async def _counts(url: str) -> tuple[int, int]:
    async with open_backend(url, SECRET) as backend, backend.sessionmaker() as session:
        subscribers = await session.scalar(select(func.count()).select_from(Subscriber))
        invoices = await session.scalar(select(func.count()).select_from(InvoiceRow))
        return int(subscribers or 0), int(invoices or 0)


async def test_seed_is_idempotent_and_fast_path_works(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/seed.db"
    first = await seed(url, SECRET, demo=True, subscribers=300)
    assert first.synthetic == 300 and first.demo_rows > 0
    counts = await _counts(url)
    assert counts[0] == len(DEMO) + 300
    again = await seed(url, SECRET, demo=True, subscribers=350)
    assert again.demo_rows == 0 and again.synthetic == 50
    assert (await _counts(url))[0] == len(DEMO) + 350
    async with open_backend(url, SECRET) as backend:
        summary = await backend.summary("48700000349")
        assert summary.last_invoice is not None
        assert len(await backend.invoices("48700000349")) == 12
        await backend.check_subscriber_code("48700000349", "000349")


@pytest.mark.postgres
async def test_seed_synthetic_on_postgres(pg_seeded: str) -> None:
    report = await seed(pg_seeded, "test-secret-key", demo=True, subscribers=200)
    assert report.demo_rows == 0
    again = await seed(pg_seeded, "test-secret-key", demo=True, subscribers=200)
    assert again.synthetic == 0
    async with open_backend(pg_seeded, "test-secret-key") as backend:
        assert len(await backend.invoices("48700000199")) == 12
        await backend.check_subscriber_code("48700000199", "000199")


def test_upgrade_runs_without_running_loop(tmp_path: Path) -> None:
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{tmp_path}/cli.db"))
