"""Read-only answers: each asks the backend once or twice and words the result from the catalogue.

Views return one text (fits a USSD screen with its navigation line) or a list of short lines that
the SMS dialog joins and the USSD dialog pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.records import LetterType, ServiceView, Tariff
from dialogs.handlers.context import Ctx


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a list a subscriber may pick from: ``value`` is kept, ``label`` is shown."""

    value: str
    label: str


async def info(ctx: Ctx) -> str:
    t = ctx.t
    s = await ctx.backend.summary(ctx.msisdn)
    invoice = (
        t(
            "info.invoice",
            amount=t.money(s.last_invoice.amount),
            due=t.date(s.last_invoice.due_date),
        )
        if s.last_invoice
        else t("info.no_invoice")
    )
    return t(
        "info",
        msisdn=s.msisdn,
        account=s.account_number,
        tariff=s.tariff.name,
        invoice=invoice,
        min_left=s.usage.minutes_left,
        sms_left=s.usage.sms_left,
    )


async def usage(ctx: Ctx) -> str:
    t = ctx.t
    u = await ctx.backend.usage(ctx.msisdn)
    return t(
        "usage",
        min_used=u.minutes_used,
        min_all=u.minutes_included,
        min_left=u.minutes_left,
        sms_used=u.sms_used,
        sms_all=u.sms_included,
        sms_left=u.sms_left,
        until=t.date(u.period_end),
    )


async def last_invoice(ctx: Ctx) -> str:
    t = ctx.t
    i = await ctx.backend.last_invoice(ctx.msisdn)
    return t(
        "invoice",
        number=i.number,
        start=t.date(i.period_start),
        end=t.date(i.period_end),
        amount=t.money(i.amount),
        due=t.date(i.due_date),
        status=t("invoice.paid" if i.paid else "invoice.unpaid"),
    )


async def invoice_lines(ctx: Ctx) -> list[Item]:
    t = ctx.t
    return [
        Item(
            i.number,
            t(
                "invoices.line",
                month=i.period_start.strftime("%m.%Y"),
                amount=t.money(i.amount),
                status=t("invoice.paid_short" if i.paid else "invoice.unpaid_short"),
            ),
        )
        for i in await ctx.backend.invoices(ctx.msisdn, 12)
    ]


async def payment(ctx: Ctx) -> str:
    t = ctx.t
    p = await ctx.backend.payment(ctx.msisdn)
    text = t(
        "payment", method=p.method.name, start=t.date(p.period_start), end=t.date(p.period_end)
    )
    if p.pending is not None:
        text += " " + t("payment.pending", reference=p.pending.reference)
    return text


async def payment_methods(ctx: Ctx) -> list[Item]:
    current = (await ctx.backend.payment(ctx.msisdn)).method.code
    return [Item(m.code, m.name) for m in await ctx.backend.payment_methods() if m.code != current]


def tariff_text(ctx: Ctx, tariff: Tariff) -> str:
    t = ctx.t
    return t(
        "tariff.line",
        name=tariff.name,
        fee=t.money(tariff.monthly_fee),
        minutes=tariff.minutes,
        sms=tariff.sms,
    )


async def tariff(ctx: Ctx) -> str:
    current = await ctx.backend.tariff(ctx.msisdn)
    return ctx.t("tariff", line=tariff_text(ctx, current))


async def tariff_choices(ctx: Ctx) -> list[Item]:
    current = await ctx.backend.tariff(ctx.msisdn)
    info = await ctx.backend.subscriber(ctx.msisdn)
    return [
        Item(x.code, tariff_text(ctx, x))
        for x in await ctx.backend.tariffs()
        if x.code != current.code and (not x.business_only or info.account_kind == "business")
    ]


def service_label(ctx: Ctx, s: ServiceView) -> str:
    mark = ctx.t("service.on_mark") if s.active else ""
    return f"{s.name}{mark}"


async def service_items(ctx: Ctx, include_all: bool) -> list[Item]:
    found = await ctx.backend.services(ctx.msisdn, include_all=include_all)
    return [Item(s.code, service_label(ctx, s)) for s in found]


async def service(ctx: Ctx, code: str) -> str:
    t = ctx.t
    s = await ctx.backend.service(ctx.msisdn, code)
    return t(
        "service",
        name=s.name,
        code=s.code,
        status=t("service.active" if s.active else "service.inactive"),
        monthly=t.money(s.monthly_fee),
        fee=t.money(s.activation_fee),
    )


async def service_active(ctx: Ctx, code: str) -> bool:
    return (await ctx.backend.service(ctx.msisdn, code)).active


def numbers_text(numbers: tuple[str, ...] | list[str]) -> str:
    return ", ".join(numbers)


async def favourites(ctx: Ctx, kind: str) -> str:
    t = ctx.t
    f = await ctx.backend.favourites(ctx.msisdn)
    if kind == "3ija":
        if not f.three_active:
            return t("fav.3ija.inactive")
        return t("fav.3ija", numbers=numbers_text(f.three) or t("fav.none"))
    if not f.friend_active:
        return t("fav.przyjaciel.inactive")
    return t("fav.przyjaciel", number=f.friend or t("fav.none"))


async def address(ctx: Ctx) -> str:
    return ctx.t("address", address=str(await ctx.backend.address(ctx.msisdn)))


async def profit(ctx: Ctx) -> str:
    t = ctx.t
    p = await ctx.backend.profit(ctx.msisdn)
    if not p.member:
        return t("profit.not_member")
    joined = t.date(p.joined) if p.joined else ""
    return t("profit", points=p.points, joined=joined)


async def profit_lines(ctx: Ctx) -> list[Item]:
    t = ctx.t
    return [
        Item(
            str(n),
            t(
                "profit.line",
                day=t.date(x.day),
                points=f"{x.points:+d}",
                kind=t(f"profit.kind.{x.kind}") if t.has(f"profit.kind.{x.kind}") else x.kind,
            ),
        )
        for n, x in enumerate(await ctx.backend.profit_history(ctx.msisdn))
    ]


async def password(ctx: Ctx) -> str:
    """Issues a temporary password: the reply carries it, so it is shown once and never stored."""
    secret = await ctx.backend.issue_temp_password(ctx.msisdn)
    return ctx.t("password", password=secret)


def letter_type_name(ctx: Ctx, lt: LetterType) -> str:
    return lt.name_en if ctx.lang == "en" and lt.name_en else lt.name


async def letter_types(ctx: Ctx, kind: str) -> list[Item]:
    return [Item(lt.code, letter_type_name(ctx, lt)) for lt in await ctx.backend.letter_types(kind)]
