"""The hot change transactions on PostgreSQL, their statements straight to asyncpg.

Why: through SQLAlchemy's async engine a change is a pool checkout, ``run_sync``'s greenlet, and
for every statement the execution context, the asyncpg adapter and result processing around the
round trip: py-spy put ~60 % of the server's CPU in a ``WLACZ`` + ``TAK`` turn there — the hot
reads go the same way (``backend/services/readers.py``). The bodies stay
the synchronous functions of a ``Connection`` that :class:`backend.sqlite_writes.InlineSqliteWriter`
runs on SQLite (one function per change, so the paths cannot drift); here they get
:class:`ChangeConnection`, which offers what they use of a ``Connection`` — ``dialect`` and
``execute(statement, params)`` answering ``rowcount``, ``first()``, ``scalar()``, ``all()`` — and
runs each statement, compiled once, on an asyncpg connection of a small pool of its own, inside
``BEGIN`` … ``COMMIT``. The body runs in a greenlet (SQLAlchemy's ``greenlet_spawn``) so that its
synchronous ``execute`` can wait for asyncpg without blocking the loop, as ``run_sync`` does.

Faithful to SQLAlchemy's asyncpg dialect where the bodies can tell: the same compiled SQL with
the same bind and result processors, prepared once per connection (asyncpg's statement cache),
``rowcount`` read from the command status as the dialect reads it (for ``RETURNING``, the rows
returned), JSON encoded by the bind processor and decoded by a codec as the dialect does, rows
with the same attribute names. A connection found dead at ``BEGIN`` is closed (the pool opens a
new one) and the change begun again on another; one that fails later is closed and the error
raised — not retried, since the commit may have landed. The errors are asyncpg's own, which
``fsm.runtime.is_transient`` knows as the store being away.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import namedtuple
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar, cast

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.util.concurrency import await_only, greenlet_spawn

from backend.pg_pool import LazyPool, discard

P = ParamSpec("P")
T = TypeVar("T")

#: Connections of the change pool (a change holds one for its transaction).
WRITE_POOL = 10
#: Seconds a change waits for a free connection (SQLAlchemy's pool_timeout default) before it
#: fails as the store being away (``sqlalchemy.exc.TimeoutError``: the SMSC offers the turn again).
ACQUIRE_TIMEOUT = 30.0
# As sqlalchemy.dialects.postgresql.asyncpg reads the command status into ``rowcount``.
_STATUS = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]
    #: None for a statement without rows; else the row maker and each column's processor
    row: Callable[[Any], Any] | None
    columns: tuple[Callable[[Any], Any] | None, ...]


class ChangeResult:
    """The part of SQLAlchemy's ``CursorResult`` the change bodies read."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def all(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class ChangeConnection:
    """What a change body uses of a SQLAlchemy ``Connection``, on one asyncpg connection in a
    transaction. Only for :meth:`AsyncpgWriter.run` (it must be called inside its greenlet)."""

    def __init__(self, raw: Any, writer: AsyncpgWriter) -> None:
        self._raw = raw
        self._writer = writer
        self.dialect = writer.dialect

    def execute(
        self, statement: ClauseElement, parameters: dict[str, Any] | None = None
    ) -> ChangeResult:
        c = self._writer.compile(statement)
        params = parameters or {}
        args = []
        for name in c.names:
            value = params[name] if name in params else c.defaults[name]
            process = c.processors.get(name)
            args.append(process(value) if process is not None else value)
        raw = self._raw
        if c.row is None:  # the command status: "UPDATE 1", "INSERT 0 1", ...
            found = _STATUS.match(await_only(raw.execute(c.sql, *args)) or "")
            return ChangeResult([], int(found.group(1)) if found else -1)
        records = await_only(raw.fetch(c.sql, *args))
        columns = c.columns
        rows = [
            c.row(v if p is None else p(v) for v, p in zip(r, columns, strict=True))
            for r in records
        ]
        # RETURNING: one row per row changed, as the command status would count them
        return ChangeResult(rows, len(records))


class AsyncpgWriter:
    """Runs change bodies (see :meth:`backend.services.context.Context.change`) on PostgreSQL."""

    def __init__(
        self, engine: AsyncEngine, size: int = WRITE_POOL, acquire_timeout: float = ACQUIRE_TIMEOUT
    ) -> None:
        self._acquire_timeout = acquire_timeout
        self.dialect = engine.dialect
        self._compiled: dict[ClauseElement, _Compiled] = {}
        self.pool = LazyPool(engine, size, _json_codecs)
        self.commits = 0  # changes committed (tests, metrics)

    def compile(self, statement: ClauseElement) -> _Compiled:
        found = self._compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self.dialect)
            processors = dict(getattr(compiled, "_bind_processors", {}) or {})
            returns = getattr(compiled, "isselect", False) or getattr(compiled, "returning", None)
            entries = getattr(compiled, "_result_columns", ()) if returns else ()
            row: Callable[[Any], Any] | None = None
            if returns:
                row_type: Any = namedtuple("Row", [e.keyname for e in entries], rename=True)  # type: ignore[misc]
                row = row_type._make
            columns = tuple(e.type._cached_result_processor(self.dialect, None) for e in entries)
            found = _Compiled(
                str(compiled),
                tuple(getattr(compiled, "positiontup", None) or ()),
                dict(compiled.params),
                processors,
                row,
                columns,
            )
            self._compiled[statement] = found
        return found

    async def run(
        self, body: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``body(connection, ...)`` in one transaction: committed unless it raises. A pooled
        connection found dead at ``BEGIN`` (PostgreSQL restarted, the backend killed) is closed
        and the change begun once more on another: nothing of it had been sent."""
        dead = (
            asyncpg.InterfaceError,
            asyncpg.exceptions.InternalClientError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,
            OSError,
        )
        pool = self.pool.pool or await self.pool.get()  # no coroutine once open
        for attempt in (1, 2):
            try:
                raw = await pool.acquire(timeout=self._acquire_timeout)
            except TimeoutError as exc:  # as the engine's pool did: the store counts as away
                raise PoolTimeout(
                    f"no PostgreSQL connection for a change within {self._acquire_timeout:g} s"
                ) from exc
            try:
                transaction = raw.transaction()
                try:
                    await transaction.start()
                except dead:
                    discard(raw)
                    if attempt == 2:
                        raise
                    continue
                try:
                    conn = cast(Connection, ChangeConnection(raw, self))
                    result = await greenlet_spawn(partial(body, conn, *args, **kwargs))
                except BaseException:
                    with contextlib.suppress(*dead):
                        await transaction.rollback()
                    raise
                await transaction.commit()
                self.commits += 1
                return result
            except dead:
                discard(raw)  # its commit may have landed: not retried
                raise
            finally:
                await pool.release(raw)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.pool.close()


async def _json_codecs(conn: Any) -> None:
    """JSON as SQLAlchemy's asyncpg dialect has it: its bind processor serialises the value, so
    the codec sends the text as it is; rows are decoded."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=str, decoder=json.loads, schema="pg_catalog")
