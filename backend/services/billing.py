"""Billing: period, usage of the bundle, invoices, payment method, tariff plan.

A tariff change is a request effective from the next billing period: reads show the new tariff
from that day on, and the next change of the number settles due requests into the subscriber row.
A payment method change is a request customer care completes by sending a pre-filled form; a
newer request replaces a pending one, the same one again is returned as it is.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import Conflict, InvalidInput, NotAllowed, NotFound
from backend.models import ChangeRequestRow, InvoiceRow, Subscriber
from backend.periods import next_period_start, period_of
from backend.records import (
    ChangeRequest,
    CodeChannel,
    Invoice,
    Payment,
    PaymentMethodOption,
    Quote,
    Summary,
    Tariff,
    Usage,
)
from backend.services import reads
from backend.services.accounts import account_code_in
from backend.services.context import (
    Context,
    ReferenceData,
    audit,
    get_account,
    get_subscriber,
    lock_subscriber,
    no_subscriber,
    reference_number,
)

PENDING = "pending"
PREFIXES = {"payment_method": "PL", "tariff": "TA"}


def _invoice(row: InvoiceRow) -> Invoice:
    return Invoice(
        row.number, row.period_start, row.period_end, row.issued, row.due_date, row.amount, row.paid
    )


def _request(row: ChangeRequestRow) -> ChangeRequest:
    return ChangeRequest(
        row.reference or "", row.kind, row.value, row.status, row.created_at, row.effective
    )


async def _pending(session: AsyncSession, msisdn: str, kind: str) -> ChangeRequestRow | None:
    return await session.scalar(
        select(ChangeRequestRow)
        .where(
            ChangeRequestRow.msisdn == msisdn,
            ChangeRequestRow.kind == kind,
            ChangeRequestRow.status == PENDING,
        )
        .order_by(ChangeRequestRow.id.desc())
        .limit(1)
    )


async def _effective_tariff_code(session: AsyncSession, sub: Subscriber, today: date) -> str:
    pending = await _pending(session, sub.msisdn, "tariff")
    if pending is not None and pending.effective is not None and pending.effective <= today:
        return pending.value
    return sub.tariff_code


async def _settle_tariff(session: AsyncSession, sub: Subscriber, today: date) -> None:
    """Apply a tariff request whose period has begun (called under the subscriber lock)."""
    pending = await _pending(session, sub.msisdn, "tariff")
    if pending is not None and pending.effective is not None and pending.effective <= today:
        sub.tariff_code = pending.value
        pending.status = "done"


async def _last_invoice(
    session: AsyncSession, account_number: str, today: date
) -> InvoiceRow | None:
    return await session.scalar(
        select(InvoiceRow)
        .where(InvoiceRow.account_number == account_number, InvoiceRow.issued <= today)
        .order_by(InvoiceRow.period_start.desc())
        .limit(1)
    )


async def _state(ctx: Context, msisdn: str, with_invoice: bool) -> tuple[Any, Usage, Tariff]:
    """One statement: the subscriber's tariff in force and bundle use (and last invoice)."""
    today = await ctx.day()
    reference = await ctx.reference()
    statement = reads.SUMMARY if with_invoice else reads.USAGE
    row = await ctx.reads.one(statement, msisdn=msisdn, today=today)
    if row is None:
        raise no_subscriber(msisdn)
    tariff = reference.tariffs[reads.effective_tariff(row, today)]
    start, end = period_of(today, row.billing_day)
    current = row.usage_start == start
    usage = Usage(
        msisdn,
        start,
        end,
        tariff.minutes,
        row.minutes_used if current else 0,
        tariff.sms,
        row.sms_used if current else 0,
    )
    return row, usage, tariff


async def summary(ctx: Context, msisdn: str) -> Summary:
    row, usage, tariff = await _state(ctx, msisdn, with_invoice=True)
    last = None
    if row.invoice_number is not None:
        last = Invoice(
            row.invoice_number,
            row.invoice_start,
            row.invoice_end,
            row.invoice_issued,
            row.invoice_due,
            row.invoice_amount,
            bool(row.invoice_paid),
        )
    return Summary(msisdn, row.number, row.name, tariff, last, usage)


async def usage(ctx: Context, msisdn: str) -> Usage:
    return (await _state(ctx, msisdn, with_invoice=False))[1]


async def last_invoice(ctx: Context, msisdn: str) -> Invoice:
    today = await ctx.day()
    async with ctx.sessions() as session:
        sub = await get_subscriber(session, msisdn)
        row = await _last_invoice(session, sub.account_number, today)
        if row is None:
            raise NotFound("no invoice yet", what="invoice")
        return _invoice(row)


async def invoices(ctx: Context, msisdn: str, months: int = 12) -> list[Invoice]:
    """The newest ``months`` invoices issued by today (none of a day the clock went back past)."""
    today = await ctx.day()
    async with ctx.sessions() as session:
        sub = await get_subscriber(session, msisdn)
        rows = await session.scalars(
            select(InvoiceRow)
            .where(InvoiceRow.account_number == sub.account_number, InvoiceRow.issued <= today)
            .order_by(InvoiceRow.period_start.desc())
            .limit(max(0, months))
        )
        return [_invoice(row) for row in rows]


async def payment_methods(ctx: Context) -> list[PaymentMethodOption]:
    return list((await ctx.reference()).payment_methods.values())


async def payment(ctx: Context, msisdn: str) -> Payment:
    today = await ctx.day()
    reference = await ctx.reference()
    async with ctx.sessions() as session:
        sub = await get_subscriber(session, msisdn)
        account = await get_account(session, sub.account_number)
        start, end = period_of(today, account.billing_day)
        pending = await _pending(session, msisdn, "payment_method")
        return Payment(
            reference.payment_methods[account.payment_method],
            start,
            end,
            _request(pending) if pending else None,
        )


async def _new_request(
    ctx: Context, session: AsyncSession, msisdn: str, kind: str, value: str, effective: date | None
) -> ChangeRequestRow:
    await session.execute(
        update(ChangeRequestRow)
        .where(
            ChangeRequestRow.msisdn == msisdn,
            ChangeRequestRow.kind == kind,
            ChangeRequestRow.status == PENDING,
        )
        .values(status="cancelled")
        .execution_options(synchronize_session=False)
    )
    row = ChangeRequestRow(
        msisdn=msisdn,
        kind=kind,
        value=value,
        status=PENDING,
        created_at=ctx.now(),
        effective=effective,
    )
    session.add(row)
    await session.flush()
    row.reference = reference_number(PREFIXES[kind], ctx.today(), row.id)
    return row


async def request_payment_change(
    ctx: Context,
    msisdn: str,
    method: str,
    channel: str,
    subscriber_code: str,
    code_channel: CodeChannel = "handset",
) -> ChangeRequest:
    """A request to change the account's payment method, after ``subscriber_code`` opened it
    (the account code on a business account) in the same transaction."""
    code = method.strip().upper()
    if code not in (await ctx.reference()).payment_methods:
        raise InvalidInput("method", "unknown", method=method)
    request: ChangeRequest | None = None
    async with ctx.sessions.begin() as session:
        refused = await account_code_in(session, ctx, msisdn, subscriber_code, code_channel)
        if refused is None:
            sub = await lock_subscriber(session, msisdn)
            account = await get_account(session, sub.account_number)
            pending = await _pending(session, msisdn, "payment_method")
            if pending is not None and pending.value == code:
                request = _request(pending)
            elif account.payment_method == code:
                raise Conflict("already the payment method", key="error.payment_same", method=code)
            else:
                row = await _new_request(ctx, session, msisdn, "payment_method", code, None)
                audit(session, ctx, msisdn, "payment_change_request", channel, method=code)
                request = _request(row)
    if refused is not None:
        raise refused
    assert request is not None
    return request


async def tariffs(ctx: Context) -> list[Tariff]:
    return list((await ctx.reference()).tariffs.values())


async def tariff(ctx: Context, msisdn: str) -> Tariff:
    reference = await ctx.reference()
    async with ctx.sessions() as session:
        sub = await get_subscriber(session, msisdn)
        return reference.tariffs[await _effective_tariff_code(session, sub, ctx.today())]


async def pending_tariff(ctx: Context, msisdn: str) -> ChangeRequest | None:
    """The tariff change waiting for its period to begin, or None."""
    async with ctx.sessions() as session:
        await get_subscriber(session, msisdn)
        pending = await _pending(session, msisdn, "tariff")
        if pending is None or (pending.effective is not None and pending.effective <= ctx.today()):
            return None
        return _request(pending)


async def _target(
    reference: ReferenceData, session: AsyncSession, sub: Subscriber, code: str
) -> Tariff:
    # ``reference`` is read before the session opens: loading it needs a connection of its own.
    target = reference.tariffs.get(code.strip().upper())
    if target is None:
        raise NotFound(f"no tariff {code!r}", what="tariff", code=code)
    account = await get_account(session, sub.account_number)
    if target.business_only and account.kind != "business":
        raise NotAllowed("business tariff", key="error.tariff_business_only", code=target.code)
    return target


async def quote_tariff_change(ctx: Context, msisdn: str, code: str) -> Quote:
    today = ctx.today()
    reference = await ctx.reference()
    async with ctx.sessions() as session:
        sub = await get_subscriber(session, msisdn)
        target = await _target(reference, session, sub, code)
        account = await get_account(session, sub.account_number)
        effective = next_period_start(today, account.billing_day)
        current = await _effective_tariff_code(session, sub, today)
        pending = await _pending(session, msisdn, "tariff")
        unchanged = (pending is not None and pending.value == target.code) or (
            pending is None and current == target.code
        )
        return Quote(
            "tariff",
            target.code,
            target.name,
            0,
            None if unchanged else target.monthly_fee,
            effective,
            not unchanged,
        )


async def change_tariff(ctx: Context, msisdn: str, code: str, channel: str) -> ChangeRequest:
    today = ctx.today()
    reference = await ctx.reference()
    async with ctx.sessions.begin() as session:
        sub = await lock_subscriber(session, msisdn)
        await _settle_tariff(session, sub, today)
        target = await _target(reference, session, sub, code)
        account = await get_account(session, sub.account_number)
        pending = await _pending(session, msisdn, "tariff")
        if pending is not None and pending.value == target.code:
            return _request(pending)
        if pending is None and sub.tariff_code == target.code:
            raise Conflict("already on this tariff", key="error.tariff_same", code=target.code)
        if sub.tariff_code == target.code:
            # Back to the current tariff: the pending request is withdrawn, nothing else changes.
            row = await _new_request(ctx, session, msisdn, "tariff", target.code, today)
            row.status = "done"
        else:
            effective = next_period_start(today, account.billing_day)
            row = await _new_request(ctx, session, msisdn, "tariff", target.code, effective)
        audit(session, ctx, msisdn, "tariff_change", channel, tariff=target.code)
        return _request(row)
