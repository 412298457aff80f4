"""Backend fixtures: the same tests on SQLite (a copy of a migrated, seeded template file per
test) and PostgreSQL (the session database, migrated and seeded once; tests that change data
work on fresh subscribers with random numbers so they never see each other)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend.api import Backend
from backend.db import create_engine, make_sessionmaker
from backend.manage import seed
from backend.seed import add_subscriber

SECRET = "test-secret-key"


class FakeClock:
    """Starts at the real now (the seed's 'today'), moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backend") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(seed(url, SECRET, demo=True))
    return path


@pytest.fixture(scope="session")
def pg_seeded(postgres_url: str) -> str:
    asyncio.run(seed(postgres_url, SECRET, demo=True))
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "idea24.db"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    return str(request.getfixturevalue("pg_seeded"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _backend_on(db_url: str, clock: FakeClock) -> AsyncIterator[Backend]:
    engine = create_engine(db_url)
    backend = Backend(make_sessionmaker(engine), SECRET, clock)
    try:
        yield backend
    finally:
        backend.context.close()
        await engine.dispose()


@pytest.fixture
async def backend(db_url: str, clock: FakeClock) -> AsyncIterator[Backend]:
    async for opened in _backend_on(db_url, clock):
        yield opened


@pytest.fixture
async def other(db_url: str, clock: FakeClock) -> AsyncIterator[Backend]:
    """A second Backend on its own engine (another process's pool), same database."""
    async for opened in _backend_on(db_url, clock):
        yield opened


NewSubscriber = Callable[..., Awaitable[str]]


@pytest.fixture
def fresh(backend: Backend) -> NewSubscriber:
    """Create a subscriber with a random valid number; returns its MSISDN."""

    async def make(code: str = "123456", **options: Any) -> str:
        msisdn = "48509" + "".join(secrets.choice("0123456789") for _ in range(6))
        await add_subscriber(backend, msisdn, code, **options)
        return msisdn

    return make
