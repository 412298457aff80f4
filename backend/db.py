"""``open_backend``: a :class:`backend.api.Backend` on its own engine.

The engine, the URL handling and the schema upgrade live in :mod:`backend.engine` (which the
services import without importing the facade); they are re-exported here for the callers that open
a backend and its engine together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL

from backend.api import Backend
from backend.clock import Clock
from backend.engine import (
    BUSY_TIMEOUT_MS,
    MIGRATIONS,
    PG_POOL,
    create_engine,
    create_schema,
    make_sessionmaker,
    normalise_url,
    schema_revisions,
    sqlite_file,
)
from backend.services.context import NewDay

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "PG_POOL",
    "create_engine",
    "create_schema",
    "make_sessionmaker",
    "normalise_url",
    "open_backend",
    "schema_revisions",
    "sqlite_file",
]


@asynccontextmanager
async def open_backend(
    url: str | URL,
    secret_key: str | bytes,
    clock: Clock | Callable[[], datetime] | None = None,
    *,
    on_new_day: NewDay | None = None,
    migrate: bool = False,
    **engine_options: Any,
) -> AsyncIterator[Backend]:
    """A ``Backend`` on its own engine, disposed on exit; ``migrate=True`` upgrades first."""
    engine = create_engine(url, **engine_options)
    try:
        if migrate:
            await create_schema(engine)
        backend = Backend(make_sessionmaker(engine), secret_key, clock, on_new_day)
        try:
            yield backend
        finally:
            backend.context.close()
    finally:
        await engine.dispose()
