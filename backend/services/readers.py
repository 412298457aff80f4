"""Who runs the hot reads of :mod:`backend.services.reads`: one runner per kind of database.

:class:`PooledReads` uses the backend's own engine in autocommit; :class:`AsyncpgReads` has its own
asyncpg pool on PostgreSQL (statements compiled once, many subscribers' reads of one tick sent as
one ``= ANY(:msisdns)`` query). On a SQLite file the reads skip aiosqlite altogether:
:class:`InlineSqliteReads` runs them on plain ``sqlite3`` connections in the event-loop thread. A
SELECT on a local file takes tens of microseconds, while each aiosqlite call is a hand-off to its
worker thread and back (ten of them per read: cursor, execute, fetch, close, rollback...), which
cost ten times more CPU than the query. WAL mode means readers never wait for the writer, so the
loop does not block on one; ``busy_timeout`` is kept short for the rare checkpoint. Writes stay on
aiosqlite (they may wait for the write lock). An in-memory SQLite database is private to its
connection, so it keeps the pooled path, as PostgreSQL does.
"""

from __future__ import annotations

import asyncio
import json
from collections import namedtuple
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, cast

import asyncpg
from sqlalchemy import (
    Engine,
    Row,
    Select,
    create_engine,
    event,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from backend import pg_pool
from backend.batching import TickFlush, fail_all
from backend.engine import sqlite_file
from backend.pg_pool import LazyPool, discard
from backend.services.reads import POSTGRESQL_FORM, for_many


class Reads(Protocol):
    """Runs the statements above: one row, or all rows (columns as attributes)."""

    async def one(self, statement: Select[Any], **params: Any) -> Any: ...

    async def all(self, statement: Select[Any], **params: Any) -> list[Any]: ...

    def close(self) -> None: ...


class PooledReads:
    """On the backend's own pool, in autocommit (a lone SELECT needs no BEGIN/ROLLBACK)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        postgresql = engine.url.get_backend_name() == "postgresql"
        self._forms = POSTGRESQL_FORM if postgresql else {}

    async def one(self, statement: Select[Any], **params: Any) -> Row[Any] | None:
        async with self._engine.connect() as conn:
            result = await conn.execute(self._forms.get(statement, statement), params)
            found: Row[Any] | None = result.first()
            return found

    async def all(self, statement: Select[Any], **params: Any) -> list[Row[Any]]:
        async with self._engine.connect() as conn:
            statement = self._forms.get(statement, statement)
            return list((await conn.execute(statement, params)).all())

    def close(self) -> None:
        return None  # the pool belongs to the backend's engine


#: Row classes are made at run time from a statement's columns (mypy wants literal fields).
_namedtuple: Any = namedtuple

#: Connections of the PostgreSQL reads' own pool (a read holds one for one round trip).
READ_POOL = 8


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    row: Callable[[Iterable[Any]], Any]


async def _json_codecs(conn: Any) -> None:
    """JSON columns decoded as SQLAlchemy's asyncpg dialect does (asyncpg alone gives str)."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class AsyncpgReads:
    """PostgreSQL: the compiled SQL straight to asyncpg, on a small asyncpg pool of its own.

    Through SQLAlchemy a one-row SELECT cost ~380 µs of CPU (execution context, result
    processing, the autocommit switch on checkout and back); asyncpg alone ~120 µs, its own
    prepared-statement cache included. Checking a connection out of SQLAlchemy's pool (a
    greenlet switch each way) was another ~30 µs of that per read, so the reads keep their own
    asyncpg pool (``size`` connections, opened on first use, beside the backend engine's).
    Rows come back as named tuples with the same attribute names. A connection that fails is
    closed (the pool opens a new one) and the read retried once, as SQLAlchemy does for a
    disconnect.
    """

    def __init__(self, engine: AsyncEngine, size: int = READ_POOL) -> None:
        self._engine = engine
        self._compiled: dict[Select[Any], _Compiled] = {}
        self._many: dict[Select[Any], Select[Any]] = {}
        # The same few statements all day: plan each once. With custom plans PostgreSQL
        # re-planned every execution (its = ANY array defeats the plan cache): 0.30 → 0.09 ms
        # of server CPU for a one-subscriber USAGE.
        self.pool = LazyPool(engine, size, _json_codecs, {"plan_cache_mode": "force_generic_plan"})
        # Reads of one event-loop tick, by statement and their other parameters: msisdn → the
        # futures of the turns waiting for that subscriber's rows.
        self._waiting: dict[tuple[Any, ...], dict[str, list[asyncio.Future[Any]]]] = {}
        self._tick = TickFlush(self._flush)
        self.batches = 0  # statements that answered more than one subscriber (tests, metrics)

    def _compile(self, statement: Select[Any]) -> _Compiled:
        found = self._compiled.get(statement)
        if found is None:
            form = POSTGRESQL_FORM.get(statement, statement)
            compiled = form.compile(dialect=self._engine.dialect)
            names = tuple(compiled.positiontup or ())
            row_type = _namedtuple("Row", list(form.selected_columns.keys()))
            row = row_type._make
            found = _Compiled(str(compiled), names, dict(compiled.params), row)
            self._compiled[statement] = found
        return found

    async def _fetch(self, statement: Select[Any], params: dict[str, Any]) -> tuple[Any, ...]:
        c = self._compile(statement)
        args = [params[n] if n in params else c.defaults[n] for n in c.names]
        pool = self.pool.pool or await self.pool.get()  # no coroutine once open
        for attempt in (1, 2):
            conn = await pool.acquire()
            try:
                records = await conn.fetch(c.sql, *args)
            except (
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,  # a killed connection mid-operation
                asyncpg.PostgresConnectionError,
                asyncpg.exceptions.OperatorInterventionError,
                OSError,
            ):
                discard(conn)
                if attempt == 2:
                    raise
                continue
            finally:
                await pool.release(conn)
            return tuple(c.row(r) for r in records)
        raise AssertionError("unreachable")

    async def one(self, statement: Select[Any], **params: Any) -> Any:
        found = await self._batched(statement, params)
        return found[0] if found else None

    async def all(self, statement: Select[Any], **params: Any) -> list[Any]:
        return list(await self._batched(statement, params))

    async def _batched(self, statement: Select[Any], params: dict[str, Any]) -> tuple[Any, ...]:
        """Reads of many subscribers made in the same tick (many turns in flight) go as one
        statement per kind: one round trip and one execution instead of one each."""
        msisdn = params.get("msisdn")
        if not isinstance(msisdn, str):
            return await self._fetch(statement, params)
        loop = asyncio.get_running_loop()
        key = (statement, *sorted((k, v) for k, v in params.items() if k != "msisdn"))
        future: asyncio.Future[tuple[Any, ...]] = loop.create_future()
        self._waiting.setdefault(key, {}).setdefault(msisdn, []).append(future)
        self._tick.request()
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for key, by_msisdn in waiting.items():
            self._tick.spawn(self._answer(key, by_msisdn))

    async def _answer(
        self, key: tuple[Any, ...], by_msisdn: dict[str, list[asyncio.Future[Any]]]
    ) -> None:
        statement, *others = key
        params = dict(others)
        try:
            if len(by_msisdn) == 1:
                [msisdn] = by_msisdn
                rows: dict[str, list[Any]] = {
                    msisdn: list(await self._fetch(statement, {**params, "msisdn": msisdn}))
                }
            else:
                many = self._many.get(statement)
                if many is None:
                    form = POSTGRESQL_FORM.get(statement, statement)
                    many = self._many[statement] = for_many(form)
                self.batches += 1
                found = await self._fetch(many, {**params, "msisdns": list(by_msisdn)})
                rows = {}
                for row in found:
                    rows.setdefault(row.msisdn, []).append(row)
        except BaseException as exc:
            fail_all((f for futures in by_msisdn.values() for f in futures), exc)
            return
        for msisdn, futures in by_msisdn.items():
            answer = tuple(rows.get(msisdn, ()))
            for future in futures:
                if not future.done():
                    future.set_result(answer)

    def close(self) -> None:
        self.pool.close()


READ_BUSY_TIMEOUT_MS = 200


def _read_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={READ_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only=ON")
    finally:
        cursor.close()


class InlineSqliteReads:
    """Plain ``sqlite3`` in the loop thread for a SQLite file (see the module docstring).

    Each statement is compiled once for SQLite (``?`` placeholders) with its columns' bind and
    result processors (dates are ISO strings in SQLite); then a read is one ``execute`` on a
    connection held for the runner's life, whose own statement cache keeps the prepared SQL.
    Through a SQLAlchemy ``Connection`` the same read cost several times more CPU than the query
    (pool checkout and reset, execution context, result metadata). ``fetchall`` always ends the
    statement, so no read transaction outlives a read (WAL keeps the newest commit visible).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url.set(drivername="sqlite")
        self._engine: Engine = create_engine(url, pool_size=2, max_overflow=2)
        event.listen(self._engine, "connect", _read_pragmas)
        self._compiled: dict[Select[Any], _SqliteCompiled] = {}
        self._held: Any = None  # the pool's connection, held: its pragmas were set on connect
        self._conn: Any = None  # its sqlite3 connection

    def _compile(self, statement: Select[Any]) -> _SqliteCompiled:
        found = self._compiled.get(statement)
        if found is None:
            dialect = self._engine.dialect
            compiled = statement.compile(dialect=dialect)
            names = tuple(compiled.positiontup or ())
            binds = compiled._bind_processors
            columns = list(statement.selected_columns)
            processors = tuple(
                (i, p)
                for i, c in enumerate(columns)
                if (p := c.type._cached_result_processor(dialect, None)) is not None
            )
            row_type = _namedtuple("Row", list(statement.selected_columns.keys()))
            found = _SqliteCompiled(
                str(compiled),
                names,
                dict(compiled.params),
                tuple(cast(Any, binds.get(n)) for n in names),
                processors,
                row_type._make,
            )
            self._compiled[statement] = found
        return found

    def _fetch(self, statement: Select[Any], params: dict[str, Any]) -> list[Any]:
        c = self._compile(statement)
        args = []
        for name, bind in zip(c.names, c.binds, strict=True):
            value = params[name] if name in params else c.defaults[name]
            args.append(value if bind is None or value is None else bind(value))
        conn = self._conn
        if conn is None:
            self._held = self._engine.raw_connection()
            conn = self._conn = self._held.driver_connection
        rows = conn.execute(c.sql, args).fetchall()
        make = c.row
        if not c.processors:
            return [make(r) for r in rows]
        made = []
        for r in rows:
            values = list(r)
            for i, process in c.processors:
                if values[i] is not None:  # every processor maps None to None
                    values[i] = process(values[i])
            made.append(make(values))
        return made

    async def one(self, statement: Select[Any], **params: Any) -> Any:
        found = self._fetch(statement, params)
        return found[0] if found else None

    async def all(self, statement: Select[Any], **params: Any) -> list[Any]:
        return self._fetch(statement, params)

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = self._conn = None
        self._engine.dispose()


class _SqliteCompiled(NamedTuple):
    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    binds: tuple[Callable[[Any], Any] | None, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # only the columns that need one
    row: Callable[[Iterable[Any]], Any]


def reads_for(engine: AsyncEngine) -> Reads:
    """Inline reads for a SQLite file, asyncpg for PostgreSQL, pooled SQLAlchemy otherwise."""
    url = engine.url
    if pg_pool.serves(url):
        return AsyncpgReads(engine)
    if sqlite_file(url) is not None:
        return InlineSqliteReads(engine)
    return PooledReads(engine)
