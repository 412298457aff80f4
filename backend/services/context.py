"""What every service function needs: sessions, the secret key, the clock, cached reference data.

The calendar moves under a running server: :meth:`Context.day` is today's date for the reads that
show periods and invoices, and the first call on a new day (or a day the clock went back to)
first runs the ``on_new_day`` hook, if one was given (the seeded data's roll-forward, see
``backend.seed.DemoCalendar``), so a server running across a month end shows the new period.

Theory of operation for changes: a change opens one transaction whose FIRST statement bumps the
subscriber's ``version`` (:func:`lock_subscriber`). On PostgreSQL that UPDATE takes the row lock,
so a second change to the same number waits and then reads the first one's result; on SQLite the
first write of a deferred transaction takes the database write lock (waiting up to busy_timeout)
before anything is read, so no stale read can be written back. Either way two concurrent changes
are applied one after the other and never lose each other. The audit row is written in the same
transaction, so a change without its audit entry cannot be committed.

The hot changes (switching a service on or off, checking a subscriber code) run the same
transaction as Core statements built once at import, on one connection instead of an ORM session:
:data:`LOCK_SUBSCRIBER` first, each statement doing what a SELECT and a write did (``INSERT … ON
CONFLICT DO NOTHING`` / ``DELETE`` whose rowcount tells, the lock's ``RETURNING`` the columns a
code check reads), :func:`audit_core`. Through the ORM each such change cost ~1.5-2 ms of CPU
(unit of work, identity map, flush); as Core statements about half. Each transaction is one
synchronous function of a ``Connection`` run by :meth:`Context.change`: on a SQLite file in the
loop thread on a plain connection (``backend.sqlite_writes``: no aiosqlite thread hops, never
blocking the loop on a lock), otherwise with ``AsyncConnection.run_sync`` in ``engine.begin()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend import pg_pool
from backend.clock import LOCAL_TZ, Clock
from backend.engine import sqlite_file
from backend.errors import NotFound
from backend.models import (
    Account,
    AuditEntry,
    CatalogueService,
    LetterTypeRow,
    PaymentMethod,
    Subscriber,
    TariffPlan,
)
from backend.pg_writes import AsyncpgWriter
from backend.records import LetterType, PaymentMethodOption, Tariff
from backend.services.readers import Reads, reads_for
from backend.sqlite_writes import InlineSqliteWriter

P = ParamSpec("P")
T = TypeVar("T")
__all__ = ["LOCAL_TZ", "Clock", "Context", "NewDay"]

#: Called with the sessions and the day when :meth:`Context.day` sees a new day.
NewDay = Callable[[async_sessionmaker[AsyncSession], date], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    code: str
    name: str
    description: str
    activation_fee: int
    monthly_fee: int
    url: str
    settings_schema: dict[str, Any] | None

    @property
    def favourite_slots(self) -> int:
        """How many numbers the service's settings hold (0 for a service without numbers)."""
        return int((self.settings_schema or {}).get("numbers", 0))

    @property
    def change_fee(self) -> int:
        return int((self.settings_schema or {}).get("change_fee", 0))


@dataclass(slots=True)
class ReferenceData:
    """Tariffs, catalogue, payment methods and letter types: read once per Backend."""

    tariffs: dict[str, Tariff] = field(default_factory=dict)
    services: dict[str, ServiceInfo] = field(default_factory=dict)
    payment_methods: dict[str, PaymentMethodOption] = field(default_factory=dict)
    letter_types: dict[str, list[LetterType]] = field(default_factory=dict)
    loaded: bool = False


class Context:
    """Shared by the service modules of one :class:`backend.api.Backend`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        clock: Clock,
        on_new_day: NewDay | None = None,
    ) -> None:
        self.sessions = sessions
        engine = sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("the Backend's sessionmaker must be bound to an AsyncEngine")
        #: The hot changes run Core statements on it (:meth:`change`).
        self.engine = engine
        #: The one-statement reads of the hot path (services/reads.py, run by services/readers.py).
        self.reads: Reads = reads_for(engine)
        #: The hot changes on a SQLite file (None: through the engine).
        self.writer = _writer_for(engine)
        self.secret_key = secret_key
        self.clock = clock
        self._reference = ReferenceData()
        self._reference_lock = asyncio.Lock()
        self._on_new_day = on_new_day
        self._day_seen: date | None = None
        self._day_lock = asyncio.Lock()

    def now(self) -> datetime:
        """The current instant, aware UTC."""
        return self.clock.now()

    def today(self) -> date:
        """The subscriber's calendar day (Poland), which billing periods are counted in."""
        return self.clock.today()

    async def day(self) -> date:
        """:meth:`today`, after the ``on_new_day`` hook ran for it (once per day it changes to,
        forwards or back; the hook must be idempotent)."""
        today = self.clock.today()
        if self._on_new_day is None or today == self._day_seen:
            return today
        async with self._day_lock:
            if today != self._day_seen:
                await self._on_new_day(self.sessions, today)
                self._day_seen = today
                self._reference = ReferenceData()
        return today

    async def reference(self) -> ReferenceData:
        if self._reference.loaded:
            return self._reference
        async with self._reference_lock:
            if not self._reference.loaded:
                self._reference = await _load_reference(self.sessions)
        return self._reference

    async def change(
        self, body: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``body(connection, ...)`` as one transaction (committed unless it raises): inline on
        a SQLite file, through the engine (``run_sync``) on PostgreSQL and in-memory SQLite. The
        body must only run statements (it is retried whole while a SQLite file is locked)."""
        if self.writer is not None:
            return await self.writer.run(body, *args, **kwargs)
        async with self.engine.begin() as conn:
            return await conn.run_sync(body, *args, **kwargs)

    def close(self) -> None:
        """Release what the reads and changes hold of their own (inline SQLite connections)."""
        self.reads.close()
        if self.writer is not None:
            self.writer.close()

    def invalidate_reference(self) -> None:
        self._reference = ReferenceData()


def _writer_for(engine: AsyncEngine) -> InlineSqliteWriter | AsyncpgWriter | None:
    """Who runs the changes: inline on a SQLite file, straight to asyncpg on PostgreSQL, the
    engine's ``run_sync`` otherwise (an in-memory SQLite database)."""
    if sqlite_file(engine.url) is not None:
        return InlineSqliteWriter(engine.url)
    if pg_pool.serves(engine.url):
        return AsyncpgWriter(engine)
    return None


async def _load_reference(sessions: async_sessionmaker[AsyncSession]) -> ReferenceData:
    data = ReferenceData(loaded=True)
    async with sessions() as session:
        for t in await session.scalars(select(TariffPlan).order_by(TariffPlan.position)):
            data.tariffs[t.code] = Tariff(
                t.code, t.name, t.monthly_fee, t.minutes, t.sms, t.business_only
            )
        for s in await session.scalars(
            select(CatalogueService).order_by(CatalogueService.position)
        ):
            data.services[s.code] = ServiceInfo(
                s.code,
                s.name,
                s.description,
                s.activation_fee,
                s.monthly_fee,
                s.url,
                dict(s.settings_schema) if s.settings_schema else None,
            )
        for p in await session.scalars(select(PaymentMethod).order_by(PaymentMethod.position)):
            data.payment_methods[p.code] = PaymentMethodOption(p.code, p.name)
        for lt in await session.scalars(
            select(LetterTypeRow).order_by(LetterTypeRow.kind, LetterTypeRow.position)
        ):
            data.letter_types.setdefault(lt.kind, []).append(
                LetterType(lt.kind, lt.code, lt.name, lt.name_en)
            )
    return data


_LOCK_SUBSCRIBER = (
    update(Subscriber)
    .values(version=Subscriber.version + 1)
    .where(Subscriber.msisdn == bindparam("lock_msisdn"))
    .returning(Subscriber)
    .execution_options(synchronize_session=False, populate_existing=True)
)


async def lock_subscriber(session: AsyncSession, msisdn: str) -> Subscriber:
    """Take the per-subscriber write lock (see the module doc) and load the row: one
    ``UPDATE … RETURNING`` (SQLite ≥ 3.35, PostgreSQL), the row lands in the session."""
    subscriber = (await session.scalars(_LOCK_SUBSCRIBER, {"lock_msisdn": msisdn})).one_or_none()
    if subscriber is None:
        raise no_subscriber(msisdn)
    return subscriber


async def get_subscriber(session: AsyncSession, msisdn: str) -> Subscriber:
    subscriber = await session.get(Subscriber, msisdn)
    if subscriber is None:
        raise no_subscriber(msisdn)
    return subscriber


def no_subscriber(msisdn: str) -> NotFound:
    """What every lookup of an unknown number raises (the number shortened, as in logs)."""
    return NotFound(f"no subscriber {msisdn[:5]}…", what="subscriber")


async def get_account(session: AsyncSession, number: str) -> Account:
    account = await session.get(Account, number)
    if account is None:
        raise NotFound("no account", what="account")
    return account


def audit(
    session: AsyncSession,
    ctx: Context,
    msisdn: str,
    action: str,
    channel: str,
    actor: str | None = None,
    **detail: Any,
) -> None:
    session.add(
        AuditEntry(
            msisdn=msisdn,
            actor=actor or msisdn,
            action=action,
            detail=detail,
            channel=channel,
            at=ctx.now(),
        )
    )


_SUBSCRIBERS = cast(Table, Subscriber.__table__)
_AUDIT = cast(Table, AuditEntry.__table__)

#: :func:`lock_subscriber` as a Core statement for the changes written without a session: the
#: same UPDATE (same lock, same version bump); ``rowcount`` 0 means no such subscriber.
LOCK_SUBSCRIBER = (
    update(_SUBSCRIBERS)
    .values(version=_SUBSCRIBERS.c.version + 1)
    .where(_SUBSCRIBERS.c.msisdn == bindparam("lock_msisdn", type_=_SUBSCRIBERS.c.msisdn.type))
)


def _bind(table: Table, column: str) -> Any:
    return bindparam(f"{table.name}_{column}", type_=table.c[column].type)


def column_binds(table: Table, *columns: str) -> dict[str, Any]:
    """``{column: bindparam}`` for ``insert(table).values(...)``: a statement built once (so its
    compiled form is cached) whose parameters are named ``<table>_<column>``."""
    return {c: _bind(table, c) for c in columns}


#: The bind parameters of an :class:`AuditEntry` row (named ``audit_log_<column>``).
AUDIT_COLUMNS = column_binds(_AUDIT, "msisdn", "actor", "action", "detail", "channel", "at")
#: An :class:`AuditEntry` row as a Core INSERT (``inline``: no ``RETURNING id`` to fetch).
AUDIT_INSERT = insert(_AUDIT).values(AUDIT_COLUMNS).inline()


def lock_subscriber_core(conn: Connection, msisdn: str) -> None:
    """:func:`lock_subscriber` on a Core connection, for a change that needs no column of the
    row: the UPDATE alone (no RETURNING to fetch); NotFound for an unknown number."""
    result = conn.execute(LOCK_SUBSCRIBER, {"lock_msisdn": msisdn})
    if result.rowcount == 0:
        raise no_subscriber(msisdn)


def audit_core(
    conn: Connection,
    ctx: Context,
    msisdn: str,
    action: str,
    channel: str,
    actor: str | None = None,
    **detail: Any,
) -> None:
    """:func:`audit` on a Core connection: the same row (columns and values)."""
    conn.execute(AUDIT_INSERT, audit_params(ctx, msisdn, action, channel, actor, **detail))


def audit_params(
    ctx: Context,
    msisdn: str,
    action: str,
    channel: str,
    actor: str | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """The parameters of an audit row for :data:`AUDIT_COLUMNS` (the subscriber is the actor
    unless ``actor`` says otherwise)."""
    return {
        "audit_log_msisdn": msisdn,
        "audit_log_actor": actor or msisdn,
        "audit_log_action": action,
        "audit_log_detail": detail,
        "audit_log_channel": channel,
        "audit_log_at": ctx.now(),
    }


def reference_number(prefix: str, day: date, row_id: int) -> str:
    return f"{prefix}/{day.year}/{row_id:06d}"
