"""The services catalogue, a number's active services, and switching them on and off.

Activation and deactivation are idempotent: switching on an active service (or off an inactive
one) changes nothing and charges nothing, and its quote says so (``changes=False``). The fee is
always quoted first; a charged fee is a ``Charge`` row in the same transaction as the change and
its audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Connection, Insert, Table, and_, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import NotFound, ServiceError
from backend.models import ActiveService, AuditEntry, Charge
from backend.records import Change, CodeChannel, Quote, ServiceView
from backend.services import reads
from backend.services.accounts import with_code
from backend.services.context import (
    AUDIT_COLUMNS,
    Context,
    ServiceInfo,
    audit_core,
    audit_params,
    column_binds,
    lock_subscriber_core,
    no_subscriber,
)

_ACTIVE = cast(Table, ActiveService.__table__)
_CHARGES = cast(Table, Charge.__table__)
_AUDIT = cast(Table, AuditEntry.__table__)
_ACTIVE_COLUMNS = column_binds(_ACTIVE, "msisdn", "service_code", "activated_at", "numbers")
_CHARGE_COLUMNS = column_binds(_CHARGES, "msisdn", "amount", "kind", "reference", "at")
#: The service's row, unless it is there already (``rowcount`` 0): one statement, no SELECT.
#: The subscriber lock already serialises changes of one number; the conflict clause makes the
#: insert itself idempotent too.
ACTIVATE_SQLITE = sqlite.insert(_ACTIVE).values(_ACTIVE_COLUMNS).on_conflict_do_nothing()
#: The service's row gone; ``rowcount`` 0 if it was not active.
DEACTIVATE_SQLITE = delete(_ACTIVE).where(
    and_(
        _ACTIVE.c.msisdn == _ACTIVE_COLUMNS["msisdn"],
        _ACTIVE.c.service_code == _ACTIVE_COLUMNS["service_code"],
    )
)
#: A :class:`Charge` row as a Core INSERT (``inline``: no ``RETURNING id`` to fetch).
CHARGE_INSERT = insert(_CHARGES).values(_CHARGE_COLUMNS).inline()


def _audit_from(source: Any) -> Insert:
    """The audit row, inserted once per row of ``source`` (a CTE with an ``msisdn`` column)."""
    names = ("msisdn", "actor", "action", "detail", "channel", "at")
    values = [source.c.msisdn, *(AUDIT_COLUMNS[n] for n in names[1:])]
    return insert(_AUDIT).from_select(list(names), select(*values).select_from(source))


def _activate_postgresql() -> Insert:
    """PostgreSQL: the service row, its charge and its audit row as one statement (data-modifying
    CTEs, which SQLite lacks): ``WITH activated AS (INSERT … ON CONFLICT DO NOTHING RETURNING
    msisdn), charged AS (INSERT INTO charges SELECT … FROM activated WHERE amount > 0) INSERT
    INTO audit_log SELECT … FROM activated`` — its rowcount is 1 if the service was switched on.
    Run after the lock statement, so it reads (and its conflict check sees) the newest commit."""
    activated = (
        postgresql.insert(_ACTIVE)
        .values(_ACTIVE_COLUMNS)
        .on_conflict_do_nothing()
        .returning(_ACTIVE.c.msisdn)
        .cte("activated")
    )
    names = ("msisdn", "amount", "kind", "reference", "at")
    charged = (
        insert(_CHARGES)
        .from_select(
            list(names),
            select(activated.c.msisdn, *(_CHARGE_COLUMNS[n] for n in names[1:]))
            .select_from(activated)
            .where(_CHARGE_COLUMNS["amount"] > 0),
        )
        .cte("charged")
    )
    return _audit_from(activated).add_cte(charged)


def _deactivate_postgresql() -> Insert:
    """PostgreSQL: ``WITH deactivated AS (DELETE … RETURNING msisdn) INSERT INTO audit_log
    SELECT … FROM deactivated`` — rowcount 1 if the service was switched off."""
    deactivated = DEACTIVATE_SQLITE.returning(_ACTIVE.c.msisdn).cte("deactivated")
    return _audit_from(deactivated)


ACTIVATE_POSTGRESQL = _activate_postgresql()
DEACTIVATE_POSTGRESQL = _deactivate_postgresql()


def _view(info: ServiceInfo, row: Any) -> ServiceView:
    """``row``: an ``ActiveService`` or a read row with ``numbers`` (None: inactive)."""
    return ServiceView(
        code=info.code,
        name=info.name,
        description=info.description,
        activation_fee=info.activation_fee,
        monthly_fee=info.monthly_fee,
        url=info.url,
        active=row is not None,
        numbers=tuple(row.numbers or ()) if row is not None else (),
        settings_schema=info.settings_schema,
    )


async def catalogue_service(ctx: Context, code: str) -> ServiceInfo:
    reference = await ctx.reference()
    info = reference.services.get(code.strip().upper())
    if info is None:
        raise NotFound(f"no service {code!r}", what="service", code=code)
    return info


async def active_rows(session: AsyncSession, msisdn: str) -> dict[str, ActiveService]:
    rows = await session.scalars(select(ActiveService).where(ActiveService.msisdn == msisdn))
    return {row.service_code: row for row in rows}


async def services(ctx: Context, msisdn: str, include_all: bool = False) -> list[ServiceView]:
    reference = await ctx.reference()
    found = await ctx.reads.all(reads.ACTIVE_ALL, msisdn=msisdn)
    if not found:
        raise no_subscriber(msisdn)
    active = {r.service_code: r for r in found if r.service_code is not None}
    return [
        _view(info, active.get(code))
        for code, info in reference.services.items()
        if include_all or code in active
    ]


async def _active_row(ctx: Context, msisdn: str, code: str) -> Any:
    """The subscriber's row of service ``code`` (None if inactive); NotFound without one."""
    row = await ctx.reads.one(reads.ACTIVE_ONE, msisdn=msisdn, code=code)
    if row is None:
        raise no_subscriber(msisdn)
    return row if row.service_code is not None else None


async def service(ctx: Context, msisdn: str, code: str) -> ServiceView:
    info = await catalogue_service(ctx, code)
    return _view(info, await _active_row(ctx, msisdn, info.code))


async def _is_active(ctx: Context, msisdn: str, code: str) -> bool:
    return await _active_row(ctx, msisdn, code) is not None


async def quote_activation(ctx: Context, msisdn: str, code: str) -> Quote:
    info = await catalogue_service(ctx, code)
    if await _is_active(ctx, msisdn, info.code):
        return Quote("activate", info.code, info.name, 0, None, ctx.today(), False)
    return Quote(
        "activate", info.code, info.name, info.activation_fee, info.monthly_fee, ctx.today(), True
    )


async def quote_deactivation(ctx: Context, msisdn: str, code: str) -> Quote:
    info = await catalogue_service(ctx, code)
    if not await _is_active(ctx, msisdn, info.code):
        return Quote("deactivate", info.code, info.name, 0, None, ctx.today(), False)
    return Quote("deactivate", info.code, info.name, 0, 0, ctx.today(), True)


def _activate(conn: Connection, ctx: Context, msisdn: str, info: ServiceInfo, channel: str) -> bool:
    """The activation's transaction (see :meth:`Context.change`): the lock, then the service row
    unless it is there (with its charge and audit row: in the same statement on PostgreSQL,
    after it on SQLite). True if the service was switched on."""
    fee = info.activation_fee
    lock_subscriber_core(conn, msisdn)
    row = {
        "active_services_msisdn": msisdn,
        "active_services_service_code": info.code,
        "active_services_activated_at": ctx.now(),
        "active_services_numbers": [],
    }
    if conn.dialect.name == "postgresql":
        charged = {
            "charges_amount": fee,
            "charges_kind": "activation",
            "charges_reference": info.code,
            "charges_at": ctx.now(),
        }
        audited = audit_params(ctx, msisdn, "activate", channel, service=info.code, fee=fee)
        return conn.execute(ACTIVATE_POSTGRESQL, row | charged | audited).rowcount != 0
    if conn.execute(ACTIVATE_SQLITE, row).rowcount == 0:
        return False
    charge_core(conn, msisdn, fee, "activation", info.code, ctx)
    audit_core(conn, ctx, msisdn, "activate", channel, service=info.code, fee=fee)
    return True


async def activate(
    ctx: Context,
    msisdn: str,
    code: str,
    channel: str,
    subscriber_code: str | None = None,
    code_channel: CodeChannel = "handset",
) -> Change:
    """Switch ``code`` on; with ``subscriber_code`` the code check runs in the same transaction
    (raises ``WrongCode`` / ``LockedOut`` as :func:`accounts.check_subscriber_code` does)."""
    info = await catalogue_service(ctx, code)
    today = ctx.today()
    if not await _guarded(ctx, msisdn, subscriber_code, code_channel, _activate, info, channel):
        return Change("activate", info.code, False, 0, today)
    return Change("activate", info.code, True, info.activation_fee, today)


async def _guarded(
    ctx: Context,
    msisdn: str,
    subscriber_code: str | None,
    code_channel: CodeChannel,
    body: Callable[..., bool],
    *args: Any,
) -> bool:
    """``body`` as its own transaction, or behind the subscriber-code check in the same one."""
    if subscriber_code is None:
        return await ctx.change(body, ctx, msisdn, *args)
    outcome = await ctx.change(
        with_code, ctx, msisdn, subscriber_code, ctx.now(), code_channel, body, *args
    )
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


def _deactivate(
    conn: Connection, ctx: Context, msisdn: str, info: ServiceInfo, channel: str
) -> bool:
    """The deactivation's transaction: the lock, then the delete (its rowcount tells) and the
    audit row (in the same statement on PostgreSQL). True if the service was switched off."""
    lock_subscriber_core(conn, msisdn)
    key = {"active_services_msisdn": msisdn, "active_services_service_code": info.code}
    if conn.dialect.name == "postgresql":
        audited = audit_params(ctx, msisdn, "deactivate", channel, service=info.code)
        return conn.execute(DEACTIVATE_POSTGRESQL, key | audited).rowcount != 0
    if conn.execute(DEACTIVATE_SQLITE, key).rowcount == 0:
        return False
    audit_core(conn, ctx, msisdn, "deactivate", channel, service=info.code)
    return True


async def deactivate(
    ctx: Context,
    msisdn: str,
    code: str,
    channel: str,
    subscriber_code: str | None = None,
    code_channel: CodeChannel = "handset",
) -> Change:
    """Switch ``code`` off; ``subscriber_code`` as for :func:`activate`."""
    info = await catalogue_service(ctx, code)
    today = ctx.today()
    changed = await _guarded(ctx, msisdn, subscriber_code, code_channel, _deactivate, info, channel)
    return Change("deactivate", info.code, changed, 0, today)


def charge(
    session: AsyncSession, msisdn: str, amount: int, kind: str, reference: str, ctx: Context
) -> None:
    if amount > 0:
        session.add(
            Charge(msisdn=msisdn, amount=amount, kind=kind, reference=reference, at=ctx.now())
        )


def charge_core(
    conn: Connection, msisdn: str, amount: int, kind: str, reference: str, ctx: Context
) -> None:
    """:func:`charge` on a Core connection: the same row, none for a zero amount."""
    if amount > 0:
        conn.execute(
            CHARGE_INSERT,
            {
                "charges_msisdn": msisdn,
                "charges_amount": amount,
                "charges_kind": kind,
                "charges_reference": reference,
                "charges_at": ctx.now(),
            },
        )
