"""Program Profit: membership, points, and the point transactions since the account was opened.

Joining is idempotent and credits a welcome bonus once. Points of a non-member are zero, but
transactions recorded before joining (none in practice) still belong to the history.
"""

from __future__ import annotations

from sqlalchemy import select

from backend.models import ProfitMember, ProfitTransactionRow
from backend.records import Profit, ProfitTransaction
from backend.services.context import Context, audit, get_subscriber, lock_subscriber

WELCOME_POINTS = 100


async def profit(ctx: Context, msisdn: str) -> Profit:
    await ctx.day()
    async with ctx.sessions() as session:
        await get_subscriber(session, msisdn)
        member = await session.get(ProfitMember, msisdn)
    if member is None:
        return Profit(False, 0, None)
    return Profit(True, member.points, member.joined)


async def profit_join(ctx: Context, msisdn: str, channel: str) -> Profit:
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        member = await session.get(ProfitMember, msisdn)
        if member is not None:
            return Profit(True, member.points, member.joined)
        session.add(ProfitMember(msisdn=msisdn, joined=today, points=WELCOME_POINTS))
        session.add(
            ProfitTransactionRow(
                msisdn=msisdn, day=today, points=WELCOME_POINTS, kind="welcome", reference=""
            )
        )
        audit(session, ctx, msisdn, "profit_join", channel)
    return Profit(True, WELCOME_POINTS, today)


async def profit_history(ctx: Context, msisdn: str) -> list[ProfitTransaction]:
    """The point transactions up to today, newest first."""
    today = await ctx.day()
    async with ctx.sessions() as session:
        await get_subscriber(session, msisdn)
        rows = await session.scalars(
            select(ProfitTransactionRow)
            .where(ProfitTransactionRow.msisdn == msisdn, ProfitTransactionRow.day <= today)
            .order_by(ProfitTransactionRow.day.desc(), ProfitTransactionRow.id.desc())
        )
        return [ProfitTransaction(r.day, r.points, r.kind, r.reference) for r in rows]
