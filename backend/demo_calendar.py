"""Keeps the seeded data current while the calendar moves under a running server.

The demo and synthetic subscribers are seeded with dates counted back from the day of seeding.
A real billing system issues an invoice when a period closes and starts counting the new period's
use; here :class:`DemoCalendar` does that, as the ``on_new_day`` hook of
:meth:`backend.services.context.Context.day`: the first read of a new day adds what the calendar
says must exist by then — the demo accounts' invoices of the last 12 periods, the demo numbers'
usage part-way through the current period, the Profit member's points for each invoice, the
synthetic accounts' invoices of the last :data:`~backend.seed.SYNTHETIC_ROLL_PERIODS` periods —
and marks invoices whose due date passed as paid. Rows are only ever added, never moved or
deleted, so a clock that goes back finds everything it needs already there (the reads do not show
what is dated after today).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import (
    Account,
    InvoiceRow,
    ProfitMember,
    ProfitTransactionRow,
    Subscriber,
    UsageRow,
)
from backend.periods import period_start, shift_period
from backend.seed import (
    DEMO,
    DEMO_ACCOUNTS,
    PROFIT_MEMBER,
    SYNTHETIC_ROLL_PERIODS,
    demo_invoices,
    demo_usage,
    insert_missing,
    profit_invoice_entries,
)
from backend.synthetic import SYNTHETIC_ACCOUNTS, synthetic_account

log = logging.getLogger(__name__)


class DemoCalendar:
    """The roll-forward, as a ``NewDay`` hook (see the module doc). Several processes on one
    database roll at the same midnight: the one that loses the race on a unique key (an invoice
    number) runs again and finds the other's rows there."""

    attempts = 3

    async def __call__(self, sessions: async_sessionmaker[AsyncSession], day: date) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                async with sessions.begin() as session:
                    added = await roll_forward(session, day)
            except IntegrityError:
                if attempt == self.attempts:
                    raise
                continue
            if added:
                extra = {"day": day.isoformat(), "rows": added}
                log.info("seeded data rolled forward", extra=extra)
            return


async def roll_forward(session: AsyncSession, today: date) -> int:
    """Add what ``today`` needs of the seeded data (idempotent); returns rows added."""
    added = await _roll_demo(session, today)
    added += await _roll_synthetic(session, today)
    return added


async def _roll_demo(session: AsyncSession, today: date) -> int:
    numbers = [a[0] for a in DEMO_ACCOUNTS]
    present = set(await session.scalars(select(Account.number).where(Account.number.in_(numbers))))
    if not present:
        return 0
    msisdns = set(
        await session.scalars(
            select(Subscriber.msisdn).where(Subscriber.msisdn.in_([d.msisdn for d in DEMO]))
        )
    )
    added = await insert_missing(session, InvoiceRow, ["number"], demo_invoices(today, present))
    added += await insert_missing(
        session, UsageRow, ["msisdn", "period_start"], demo_usage(today, msisdns)
    )
    await session.execute(
        update(InvoiceRow)
        .where(
            InvoiceRow.account_number.in_(present),
            InvoiceRow.due_date < today,
            InvoiceRow.paid.is_(False),
        )
        .values(paid=True)
        .execution_options(synchronize_session=False)
    )
    return added + await _roll_profit(session, today)


async def _roll_profit(session: AsyncSession, today: date) -> int:
    member = await session.get(ProfitMember, PROFIT_MEMBER)
    if member is None:
        return 0
    entries = profit_invoice_entries(today)
    known = set(
        await session.scalars(
            select(ProfitTransactionRow.reference).where(
                ProfitTransactionRow.msisdn == PROFIT_MEMBER,
                ProfitTransactionRow.reference.in_([e[3] for e in entries]),
            )
        )
    )
    fresh = [e for e in entries if e[3] not in known]
    if not fresh:
        return 0
    await session.execute(
        insert(ProfitTransactionRow),
        [
            {"msisdn": PROFIT_MEMBER, "day": d, "points": p, "kind": k, "reference": r}
            for d, p, k, r in fresh
        ],
    )
    member.points += sum(e[1] for e in fresh)
    return len(fresh)


async def _roll_synthetic(session: AsyncSession, today: date) -> int:
    """The synthetic accounts' invoices of their last periods. Synthetic subscriber ``i`` has
    billing day ``1 + i % 28`` and all accounts of one billing day are written together, so the
    first account of each day (``9.0000000`` … ``9.0000027``) tells, by one indexed look-up of
    invoice numbers, which (day, period) pairs are missing; only those run an ``INSERT …
    SELECT`` over the accounts (an invoice for the amount of their newest one)."""
    probes = {synthetic_account(day - 1): day for day in range(1, 29)}
    present = set(await session.scalars(select(Account.number).where(Account.number.in_(probes))))
    wanted: dict[str, tuple[int, date]] = {}
    for account in present:
        day = probes[account]
        current = period_start(today, day)
        for back in range(1, SYNTHETIC_ROLL_PERIODS + 1):
            start = shift_period(current, -back)
            wanted[f"FV/{start:%Y/%m}/{account}"] = (day, start)
    if not wanted:
        return 0
    have = set(
        await session.scalars(select(InvoiceRow.number).where(InvoiceRow.number.in_(wanted)))
    )
    added = 0
    for number, (day, start) in sorted(wanted.items()):
        if number not in have:
            added += await _invoice_for_day(session, today, day, start)
    return added


async def _invoice_for_day(session: AsyncSession, today: date, day: int, start: date) -> int:
    """The invoice of the period from ``start`` for every synthetic account billed on ``day``
    that lacks it."""
    end = shift_period(start, 1) - timedelta(days=1)
    issued = end + timedelta(days=1)
    due = issued + timedelta(days=14)
    number = literal(f"FV/{start:%Y/%m}/") + Account.number
    newest = (
        select(InvoiceRow.amount)
        .where(InvoiceRow.account_number == Account.number)
        .order_by(InvoiceRow.period_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    exists = select(InvoiceRow.id).where(
        InvoiceRow.account_number == Account.number, InvoiceRow.period_start == start
    )
    rows = select(
        Account.number,
        number,
        literal(start),
        literal(end),
        literal(issued),
        literal(due),
        func.coalesce(newest, 0),
        literal(due < today),
    ).where(Account.number.like(SYNTHETIC_ACCOUNTS), Account.billing_day == day, ~exists.exists())
    columns = ["account_number", "number", "period_start", "period_end", "issued", "due_date"]
    result = await session.execute(
        insert(InvoiceRow).from_select([*columns, "amount", "paid"], rows)
    )
    return max(0, getattr(result, "rowcount", 0) or 0)
