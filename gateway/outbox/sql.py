"""The outbox as a table (SQLite embedded, PostgreSQL shared) for deployments without Redis.

One row per item; ``id`` order is production order. A row is leased by an UPDATE that only
succeeds while nobody else holds a live lease (``lease_until``), so two processes never take the
same row; a row is eligible only when no earlier row of the same subscriber is still queued —
replies to one subscriber leave in order. Sent rows are deleted; failed rows stay with
``state = 'failed'`` and the error. The table has its own MetaData (the outbox is gateway
plumbing, not domain data) and is created with ``create_all(checkfirst=True)`` at startup.

Cost per reply (the outbox was most of a turn's CPU on SQLite). Writes are coalesced: every
``put`` and ``done`` made in the same event-loop tick (one per turn, many turns in flight) is
written by one transaction — one multi-row INSERT … RETURNING and one ``DELETE … WHERE id IN``
— by a single writer task, and each caller still returns only once *its* batch committed (the
durability a turn's reply needs before the SMSC gets its deliver_sm_resp). One flush runs at a
time, so ids keep production order across batches. ``take`` is one statement: ``UPDATE … WHERE
id IN (SELECT … ORDER BY id LIMIT n) RETURNING …`` (SQLite ≥ 3.35; on PostgreSQL the inner
SELECT is ``FOR UPDATE SKIP LOCKED``, so concurrent takers skip each other's rows instead of
queueing). On SQLite the outbox's write transactions are serialised in-process by a lock, so
they never wait for each other in SQLite's busy handler (other processes' writers still do).
A committed put or done wakes this process's waiting ``take`` at once (an ``asyncio.Event``);
rows written by other processes are found by polling every ``poll`` seconds.

On a SQLite file the flush and the take run as plain ``sqlite3`` transactions in the event-loop
thread (:mod:`gateway.outbox.sqlite_inline`: never blocking on another writer's lock, WAL
checkpoints in a worker thread): through SQLAlchemy and aiosqlite put + take + done cost ~118 µs
of CPU per reply, inline ~28 µs. PostgreSQL, and the rarer writes (retry, fail, heartbeat,
recover), go through the engine.

Durability on SQLite: WAL with ``synchronous=NORMAL`` (see :mod:`backend.db`): a committed
reply survives the process being killed (SIGKILL, OOM); a power cut may lose the last
transactions, which is not something we promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.batching import fail_all
from backend.db import sqlite_file
from gateway.outbox.base import DEFAULT_LEASE, Outbox, OutboxItem, new_ref
from gateway.outbox.sqlite_inline import InlineWriter

#: Tries of one put when the database cut the connection under it.
PUT_ATTEMPTS = 3

metadata = sa.MetaData()

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("msisdn", sa.String(20), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("meta", sa.Text(), nullable=False, default="{}"),
    sa.Column("ref", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(10), nullable=False, default="queued"),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float(), nullable=False, default=0.0),
    sa.Column("not_before", sa.Float(), nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("accepted", sa.Text(), nullable=False, default="{}"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Index("ix_outbox_msisdn_id", "msisdn", "id"),
    sa.Index("ix_outbox_state_id", "state", "id"),
    # The take's first filter: rows being sent (lease in the future) are skipped inside the
    # index, so a take costs the same with 5 or 500 replies in flight.
    sa.Index("ix_outbox_state_lease", "state", "lease_until"),
)


def _take_statement(postgres: bool) -> sa.Update:
    """Lease up to ``:limit`` eligible rows to ``:owner`` and return them, in one statement.

    Eligible: queued, no live lease, past its ``not_before``, and no earlier row of the same
    subscriber still queued. On PostgreSQL the chosen rows are locked and rows another taker
    holds are skipped; the outer WHERE re-checks the lease (a row leased meanwhile is left).
    """
    t = outbox_table
    picked = t.alias("picked")
    earlier = t.alias("earlier")
    now = sa.bindparam("now", type_=sa.Float())
    blocked = (
        sa.select(earlier.c.id)
        .where(
            earlier.c.msisdn == picked.c.msisdn,
            earlier.c.id < picked.c.id,
            earlier.c.state == "queued",
        )
        .exists()
    )
    chosen = (
        sa.select(picked.c.id)
        .where(
            picked.c.state == "queued",
            picked.c.lease_until < now,
            picked.c.not_before <= now,
            ~blocked,
        )
        .order_by(picked.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    if postgres:
        # A materialised CTE runs the LIMIT … SKIP LOCKED choice exactly once. As ``id IN
        # (subquery)`` the planner may rescan it per outer row: with a fresh table (no
        # statistics) and 600 queued rows one take leased 50 rows for a LIMIT of 32 and took
        # 9.7 s; as a CTE, 32 rows in 18 ms (tests/gateway/outbox/test_outbox_take_plan.py).
        picks = chosen.with_for_update(skip_locked=True, of=picked).cte("chosen")
        is_chosen = t.c.id == picks.prefix_with("MATERIALIZED").c.id
    else:
        is_chosen = t.c.id.in_(chosen.scalar_subquery())
    return (
        t.update()
        .where(is_chosen, t.c.state == "queued", t.c.lease_until < now)
        .values(
            lease_owner=sa.bindparam("owner", type_=sa.String()),
            lease_until=sa.bindparam("until", type_=sa.Float()),
            attempts=t.c.attempts + 1,
        )
        .returning(t.c.id, t.c.msisdn, t.c.text, t.c.meta, t.c.ref, t.c.attempts, t.c.accepted)
    )


_TAKE = _take_statement(postgres=False)
_TAKE_PG = _take_statement(postgres=True)
#: Many rows, one statement (SQLAlchemy's "insertmanyvalues" batches an executemany into one
#: multi-row INSERT). RETURNING has no defined order, but one statement numbers its rows in
#: VALUES order (SQLite: max(rowid) + 1 per row, the writer lock held; PostgreSQL: nextval per
#: row, increasing for one session), so the sorted ids are the rows' ids in order.
_INSERT = (
    outbox_table.insert()
    .values(state="queued", lease_until=0.0, not_before=0.0, attempts=0, accepted="{}")
    .returning(outbox_table.c.id)
)


#: Rows per INSERT on the inline SQLite path (5 parameters each, far below SQLite's limit).
_INLINE_ROWS = 200
#: ``_TAKE`` on the inline SQLite path as two statements in one transaction: SQLite ran the
#: single ``UPDATE … WHERE id IN (SELECT …)`` in ~215 µs with 100 rows leased and nothing to
#: take, the SELECT alone in ~16 µs; the UPDATE then runs only when something was chosen.
#: Without statistics SQLite checked "an earlier row of this subscriber" through the state
#: index (every queued row, per candidate); ``INDEXED BY`` holds it to (msisdn, id).
_INLINE_CHOOSE = (
    "SELECT picked.id FROM outbox AS picked WHERE picked.state = 'queued'"
    " AND picked.lease_until < ? AND picked.not_before <= ? AND NOT EXISTS ("
    "SELECT 1 FROM outbox AS earlier INDEXED BY ix_outbox_msisdn_id"
    " WHERE earlier.msisdn = picked.msisdn"
    " AND earlier.id < picked.id AND earlier.state = 'queued')"
    " ORDER BY picked.id LIMIT ?"
)
_INLINE_LEASE = (
    "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1"
    " WHERE id IN ({}) RETURNING id, msisdn, text, meta, ref, attempts, accepted"
)
_INLINE_INSERT_ROW = "(?, ?, ?, ?, 'queued', 0.0, 0.0, 0, '{}', ?)"
_INLINE_INSERT = (
    "INSERT INTO outbox (msisdn, text, meta, ref, state, lease_until, not_before, attempts,"
    " accepted, created_at) VALUES "
)


def _inline_path(engine: AsyncEngine) -> str | None:
    """The SQLite file the engine writes to, when it is a plain file (inline writes)."""
    url = engine.url
    database = sqlite_file(url)
    if database is None or database.startswith("file:") or url.query.get("uri"):
        return None  # sqlite3.connect below takes a plain path, not a URI
    return database


def _item(row: Sequence[Any]) -> OutboxItem:
    """A take's RETURNING row (id, msisdn, text, meta, ref, attempts, accepted)."""
    id_, msisdn, text, meta, ref, attempts, accepted = row
    return OutboxItem(
        str(id_),
        msisdn,
        text,
        json.loads(meta),
        ref,
        id_,
        attempts,
        {int(k): v for k, v in json.loads(accepted).items()} if accepted != "{}" else {},
    )


@dataclass(slots=True)
class _Put:
    msisdn: str
    texts: list[str]
    meta: str
    ids: asyncio.Future[list[str]]


@dataclass(slots=True)
class _Done:
    id: int
    written: asyncio.Future[None]


class SqlOutbox(Outbox):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
        poll: float = 0.2,
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._clock = clock
        self._poll = poll
        self._ready = False
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite has one writer at a time: ours queue here rather than in its busy handler.
        self._serial: asyncio.Lock | None = None if self._postgres else asyncio.Lock()
        self._puts: list[_Put] = []
        self._dones: list[_Done] = []
        self._writer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # a put or done committed here: a take may find more
        # A SQLite file: the hot statements (flush, take) on a plain sqlite3 connection in this
        # thread (see gateway.outbox.sqlite_inline); everything else through the engine.
        path = None if self._postgres else _inline_path(engine)
        self._inline = InlineWriter(path) if path is not None else None

    async def create(self) -> None:
        """Create the table if missing (idempotent; called lazily too)."""
        if not self._ready:
            async with self._engine.begin() as conn:
                await conn.run_sync(_create_table_and_indexes)
            self._ready = True

    def _write_lock(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._serial if self._serial is not None else contextlib.nullcontext()

    # -- coalesced writes ------------------------------------------------------------------

    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        await self.create()
        listed = [texts] if isinstance(texts, str) else list(texts)
        if not listed:
            return []
        ids: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._puts.append(_Put(msisdn, listed, json.dumps(dict(meta or {})), ids))
        self._wake_writer()
        return await ids

    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._dones.append(_Done(int(item.id), written))
        self._wake_writer()
        await written

    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        """Flush what queued up, one batch at a time, until nothing is waiting."""
        while self._puts or self._dones:
            await asyncio.sleep(0)  # the calls of this tick join the batch
            puts, self._puts = self._puts, []
            dones, self._dones = self._dones, []
            try:
                ids = await self._flush(puts, dones)
            except BaseException as exc:
                fail_all([*(p.ids for p in puts), *(d.written for d in dones)], exc)
                continue
            for put, put_ids in zip(puts, ids, strict=True):
                if not put.ids.done():
                    put.ids.set_result(put_ids)
            for done in dones:
                if not done.written.done():
                    done.written.set_result(None)
            self._changed.set()

    async def _flush(self, puts: list[_Put], dones: list[_Done]) -> list[list[str]]:
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                return await self._flush_once(puts, dones)
            except DBAPIError as exc:
                # The turns already happened: a connection the database cut under the write is
                # worth another one (the failed transaction left nothing behind).
                if not exc.connection_invalidated or attempt == PUT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _flush_once(self, puts: list[_Put], dones: list[_Done]) -> list[list[str]]:
        now = self._clock()
        rows = [
            {"msisdn": put.msisdn, "text": text, "meta": put.meta, "ref": new_ref()}
            for put in puts
            for text in put.texts
        ]
        inserted: list[int] = []
        if self._inline is not None:
            async with self._write_lock():
                inserted = await self._inline.write(
                    lambda conn: _inline_flush(conn, rows, [d.id for d in dones], now)
                )
        else:
            async with self._write_lock(), self._engine.begin() as conn:
                if dones:
                    await conn.execute(
                        outbox_table.delete().where(outbox_table.c.id.in_([d.id for d in dones]))
                    )
                if rows:
                    result = await conn.execute(
                        _INSERT, [{**row, "created_at": now} for row in rows]
                    )
                    inserted = sorted(int(r[0]) for r in result.all())
        out: list[list[str]] = []
        at = 0
        for put in puts:
            out.append([str(i) for i in inserted[at : at + len(put.texts)]])
            at += len(put.texts)
        return out

    # -- taking ----------------------------------------------------------------------------

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        await self.create()
        deadline = time.monotonic() + wait
        while True:
            self._changed.clear()
            out = await self._take_once(consumer, limit)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            # Woken by our own commits at once; other processes' rows are polled for.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(self._poll, remaining))

    async def _take_once(self, consumer: str, limit: int) -> list[OutboxItem]:
        now = self._clock()
        params = {"now": now, "until": now + self._lease, "owner": consumer, "limit": limit}
        if self._inline is not None:
            async with self._write_lock():
                found = await self._inline.write(lambda conn: _inline_take(conn, params))
            return [_item(r) for r in sorted(found)]
        statement = _TAKE_PG if self._postgres else _TAKE
        async with self._write_lock(), self._engine.begin() as conn:
            rows = sorted((await conn.execute(statement, params)).all(), key=lambda r: r.id)
        return [_item(r) for r in rows]

    async def heartbeat(self, consumer: str) -> None:
        t = outbox_table
        now = self._clock()
        async with self._write_lock(), self._engine.begin() as conn:
            await conn.execute(
                t.update()
                .where(t.c.lease_owner == consumer, t.c.lease_until >= now, t.c.state == "queued")
                .values(lease_until=now + self._lease)
            )

    async def recover(self, consumer: str, dead: Callable[[str], bool]) -> int:
        await self.create()
        t = outbox_table
        live = sa.and_(t.c.state == "queued", t.c.lease_until >= self._clock())
        async with self._write_lock(), self._engine.begin() as conn:
            owners = (
                await conn.execute(sa.select(t.c.lease_owner).where(live).distinct())
            ).scalars()
            gone = [o for o in owners if o is not None and dead(o)]
            if not gone:
                return 0
            released = await conn.execute(
                t.update()
                .where(live, t.c.lease_owner.in_(gone))
                .values(lease_owner=None, lease_until=0.0)
            )
        return int(released.rowcount or 0)

    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        merged = {str(k): v for k, v in {**item.accepted, **accepted}.items()}
        async with self._write_lock(), self._engine.begin() as conn:
            await conn.execute(
                outbox_table.update()
                .where(outbox_table.c.id == int(item.id))
                .values(
                    lease_owner=None,
                    lease_until=0.0,
                    not_before=self._clock() + delay,
                    accepted=json.dumps(merged),
                    error=error,
                )
            )
        self._changed.set()

    async def fail(self, item: OutboxItem, error: str) -> None:
        async with self._write_lock(), self._engine.begin() as conn:
            await conn.execute(
                outbox_table.update()
                .where(outbox_table.c.id == int(item.id))
                .values(state="failed", lease_owner=None, lease_until=0.0, error=error)
            )
        self._changed.set()

    async def depth(self) -> int:
        await self.create()
        async with self._engine.connect() as conn:
            query = sa.select(sa.func.count()).where(outbox_table.c.state == "queued")
            return int((await conn.execute(query)).scalar_one())

    async def failed(self) -> list[tuple[OutboxItem, str]]:
        t = outbox_table
        async with self._engine.connect() as conn:
            rows = (
                (await conn.execute(sa.select(t).where(t.c.state == "failed").order_by(t.c.id)))
                .mappings()
                .all()
            )
        return [
            (
                OutboxItem(
                    str(r["id"]), r["msisdn"], r["text"], json.loads(r["meta"]), r["ref"], r["id"]
                ),
                r["error"] or "",
            )
            for r in rows
        ]

    async def close(self) -> None:
        """Let a flush under way finish (its callers are waiting for it)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait({writer}, timeout=5.0)
        if self._inline is not None:
            await self._inline.close()


def _inline_flush(conn: Any, rows: list[dict[str, Any]], done: list[int], now: float) -> list[int]:
    """One flush on the inline connection: delete what was sent, insert the new replies; the
    new ids in VALUES order (see ``_INSERT``)."""
    if done:
        marks = ",".join("?" * len(done))  # placeholders only: the ids are parameters
        conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", done)  # noqa: S608
    inserted: list[int] = []
    for start in range(0, len(rows), _INLINE_ROWS):
        chunk = rows[start : start + _INLINE_ROWS]
        args: list[Any] = []
        for row in chunk:
            args += (row["msisdn"], row["text"], row["meta"], row["ref"], now)
        sql = _INLINE_INSERT + ", ".join([_INLINE_INSERT_ROW] * len(chunk)) + " RETURNING id"
        inserted += sorted(int(r[0]) for r in conn.execute(sql, args).fetchall())
    return inserted


def _inline_take(conn: Any, params: Mapping[str, Any]) -> list[Any]:
    """``_TAKE`` on the inline connection (inside its write transaction: nobody else can lease
    between the choice and the lease)."""
    now = params["now"]
    chosen = [r[0] for r in conn.execute(_INLINE_CHOOSE, (now, now, params["limit"]))]
    if not chosen:
        return []
    sql = _INLINE_LEASE.format(",".join("?" * len(chosen)))
    return list(conn.execute(sql, (params["owner"], params["until"], *chosen)).fetchall())


def _create_table_and_indexes(conn: Any) -> None:
    """The table if missing, and any index added since it was created (``create_all`` makes
    indexes only with a new table)."""
    metadata.create_all(conn, checkfirst=True)
    for index in outbox_table.indexes:
        index.create(conn, checkfirst=True)
