"""The asyncpg pools of the PostgreSQL hot paths (reads, changes), beside SQLAlchemy's engine.

Why their own pools: checking a connection out of SQLAlchemy's pool is a greenlet switch each way
and an autocommit switch, ~30 µs of CPU per call, and the hot paths do not need the engine's
execution machinery (``backend/services/readers.py``, ``backend/pg_writes.py``). Connections are
opened on first use, up to ``size``, and go back to the pool without asyncpg's reset query: a
second round trip after every call (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
ALL``), ~40 % of asyncpg's CPU per read when batches hold one subscriber. These connections only
run compiled statements — no session settings, cursors, listeners or advisory locks to undo —
and asyncpg still rolls back a transaction left open, whatever the reset query
(``Connection._reset``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

#: The connections' per-connection set-up (type codecs), run once for each new connection.
Init = Callable[[Any], Awaitable[None]]


def serves(url: URL) -> bool:
    """A PostgreSQL URL on asyncpg: the hot reads and changes get pools of their own."""
    return url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg"


def connection_class() -> type[Any]:
    """asyncpg connections released to their pool without a round trip (module docstring)."""

    class HotPathConnection(asyncpg.Connection):  # type: ignore[misc]
        def get_reset_query(self) -> str:
            return ""

    return HotPathConnection


def discard(conn: Any) -> None:
    """Close a pooled connection that failed, so its pool opens a fresh one.

    When asyncpg itself sees the connection close (the server killed it), it hands the connection
    back to its pool at once and detaches the proxy: every later call on it, ``terminate``
    included, raises ``InterfaceError`` — there is nothing left to close then.
    """
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


class LazyPool:
    """An asyncpg pool to the engine's database, opened by the first :meth:`get`."""

    def __init__(
        self,
        engine: AsyncEngine,
        size: int,
        init: Init,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        # The engine's own connect arguments: the host list of a multi-host URL and
        # target_session_attrs included, so these pools find the primary as the engine does.
        _args, self._connect = engine.dialect.create_connect_args(engine.url)
        self._connect.pop("prepared_statement_cache_size", None)  # SQLAlchemy's, not asyncpg's
        self._size = size
        self._init = init
        self._settings = dict(server_settings or {})
        self.pool: Any = None  # asyncpg.Pool once opened
        self._opening: asyncio.Lock | None = None

    async def get(self) -> Any:
        if self.pool is not None:
            return self.pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self.pool is None:
                self.pool = await asyncpg.create_pool(
                    **self._connect,
                    min_size=1,
                    max_size=self._size,
                    init=self._init,
                    connection_class=connection_class(),
                    server_settings=self._settings or None,
                )
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None
