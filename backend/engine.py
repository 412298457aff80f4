"""Engines and schema: the database URL, the engine per driver, the Alembic upgrade.

SQLite is the embedded default: aiosqlite, WAL journal (readers never block the writer),
``busy_timeout`` so a second writer waits instead of failing, foreign keys on. PostgreSQL (asyncpg)
serves many processes at scale. The schema is always created by the Alembic migrations, never by
``metadata.create_all``, so a fresh database and an upgraded one are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from backend.errors import ConfigError

BUSY_TIMEOUT_MS = 10_000
#: PostgreSQL connections per engine: a hot read holds one for a single round trip, so 20 serve
#: thousands of turns a second; more turns in flight queue for one (no service function holds
#: a connection while it waits for another).
PG_POOL = 20
MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_PG_PORT = 5432


def normalise_url(url: str | URL) -> URL:
    """Accept ``sqlite:///f.db`` and ``postgresql://…`` (several hosts too) and pick the async
    driver."""
    try:
        parsed = make_url(url if isinstance(url, URL) else _host_list(url))
    except Exception:  # ArgumentError, ValueError: the message may hold the password
        raise ConfigError("IDEA24_DATABASE_URL: not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        "IDEA24_DATABASE_URL: expected sqlite+aiosqlite:///FILE or postgresql+asyncpg://…, "
        f"got {parsed.render_as_string(hide_password=True)!r}"
    )


def _host_list(url: str) -> str:
    """libpq's several hosts, ``postgresql://u@h1:5432,h2:5433/db?target_session_attrs=…`` (what
    operators write), in SQLAlchemy's form ``postgresql://u@/db?host=h1:5432&host=h2:5433&…``,
    which the asyncpg dialect hands to asyncpg as lists of hosts and ports; asyncpg tries them in
    order and keeps the first matching ``target_session_attrs`` (``read-write``: the primary)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    listed = [h if ":" in h else f"{h}:{DEFAULT_PG_PORT}" for h in hosts.split(",") if h]
    query = "&".join([*(f"host={h}" for h in listed), *([parts.query] if parts.query else [])])
    return urlunsplit((parts.scheme, f"{userinfo}{at}", parts.path, query, parts.fragment))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def sqlite_file(url: URL) -> str | None:
    """The database file of a SQLite URL; None for another database or an in-memory one."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if "mode=memory" in str(url) else database


def create_engine(url: str | URL, **options: Any) -> AsyncEngine:
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {"timeout": BUSY_TIMEOUT_MS / 1000})
        engine = _create_async_engine(parsed, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # A fixed pool: overflow connections would be opened under a burst and closed right after
    # (a new connection costs a TCP + auth handshake and an empty prepared-statement cache).
    options.setdefault("pool_size", PG_POOL)
    options.setdefault("max_overflow", 0)
    return _create_async_engine(parsed, **options)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade_sync(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def create_schema(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with the Alembic migrations (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_sync, revision)


def _revisions_sync(connection: Connection) -> tuple[str | None, str | None]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    newest = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(connection).get_current_revision(), newest


async def schema_revisions(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """The database's migration revision (None: no schema yet) and the newest one shipped."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revisions_sync)
