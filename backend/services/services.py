"""The services catalogue, a number's active services, and switching them on and off.

Activation and deactivation are idempotent: switching on an active service (or off an inactive
one) changes nothing and charges nothing, and its quote says so (``changes=False``). The fee is
always quoted first; a charged fee is a ``Charge`` row in the same transaction as the change and
its audit entry.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import NotFound
from backend.models import ActiveService, Charge
from backend.records import Change, Quote, ServiceView
from backend.services import reads
from backend.services.context import (
    Context,
    ServiceInfo,
    audit,
    lock_subscriber,
)


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


def _no_subscriber(msisdn: str) -> NotFound:
    return NotFound(f"no subscriber {msisdn[:5]}…", what="subscriber")


async def services(ctx: Context, msisdn: str, include_all: bool = False) -> list[ServiceView]:
    reference = await ctx.reference()
    found = await ctx.reads.all(reads.ACTIVE_ALL, msisdn=msisdn)
    if not found:
        raise _no_subscriber(msisdn)
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
        raise _no_subscriber(msisdn)
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


async def activate(ctx: Context, msisdn: str, code: str, channel: str) -> Change:
    info = await catalogue_service(ctx, code)
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        if await session.get(ActiveService, (msisdn, info.code)) is not None:
            return Change("activate", info.code, False, 0, today)
        now = ctx.now()
        session.add(
            ActiveService(msisdn=msisdn, service_code=info.code, activated_at=now, numbers=[])
        )
        charge(session, msisdn, info.activation_fee, "activation", info.code, ctx)
        audit(session, ctx, msisdn, "activate", channel, service=info.code, fee=info.activation_fee)
    return Change("activate", info.code, True, info.activation_fee, today)


async def deactivate(ctx: Context, msisdn: str, code: str, channel: str) -> Change:
    info = await catalogue_service(ctx, code)
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        row = await session.get(ActiveService, (msisdn, info.code))
        if row is None:
            return Change("deactivate", info.code, False, 0, today)
        await session.delete(row)
        audit(session, ctx, msisdn, "deactivate", channel, service=info.code)
    return Change("deactivate", info.code, True, 0, today)


def charge(
    session: AsyncSession, msisdn: str, amount: int, kind: str, reference: str, ctx: Context
) -> None:
    if amount > 0:
        session.add(
            Charge(msisdn=msisdn, amount=amount, kind=kind, reference=reference, at=ctx.now())
        )
