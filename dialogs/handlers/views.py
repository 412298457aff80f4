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
    last = s.last_invoice
    invoice = (
        t(
            "info.invoice",
            amount=t.money(last.amount),
            due=t.date(last.due_date),
            status=t("invoice.paid" if last.paid else "invoice.unpaid"),
        )
        if last
        else t("info.no_invoice")
    )
    return t(
        "info",
        msisdn=t.number(s.msisdn),
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
        "payment",
        method=method_name(p.method.name),
        start=t.date(p.period_start),
        end=t.date(p.period_end),
    )
    if p.pending is not None:
        text += " " + t("payment.pending", reference=p.pending.reference)
    return text


def method_name(name: str) -> str:
    """A payment method as a sentence says it: ``Polecenie zapłaty`` → ``polecenie zapłaty``."""
    return name[:1].lower() + name[1:]


async def payment_choices(ctx: Ctx) -> list[tuple[int, Item]]:
    """The methods a subscriber may move to, each with its fixed number (1 = the first method)."""
    current = (await ctx.backend.payment(ctx.msisdn)).method.code
    return [
        (n, Item(m.code, method_name(m.name)))
        for n, m in enumerate(await ctx.backend.payment_methods(), 1)
        if m.code != current
    ]


async def payment_methods(ctx: Ctx) -> list[Item]:
    return [item for _, item in await payment_choices(ctx)]


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
    """The tariff in force and the change waiting for the next period, if any."""
    t = ctx.t
    current = await ctx.backend.tariff(ctx.msisdn)
    text = t("tariff", line=tariff_text(ctx, current))
    pending = await ctx.backend.pending_tariff(ctx.msisdn)
    if pending is not None and pending.effective is not None:
        found = [x for x in await ctx.backend.tariffs() if x.code == pending.value]
        name = found[0].name if found else pending.value
        text += " " + t("tariff.pending", effective=t.date(pending.effective), name=name)
    return text


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


def service_status(ctx: Ctx, s: ServiceView) -> str:
    """``włączony`` / ``włączona`` / ``włączone``: the status agrees with the service's name."""
    t = ctx.t
    gender = t(f"gender.{s.code}") if t.has(f"gender.{s.code}") else "f"
    return t(f"service.{'active' if s.active else 'inactive'}.{gender}")


async def service(ctx: Ctx, code: str, link: bool = True) -> str:
    """One line of description and the service's page, as the portal's "informacje/link"
    (``link=False``: without the page, for a USSD screen, which cannot open it)."""
    t = ctx.t
    s = await ctx.backend.service(ctx.msisdn, code)
    return t(
        "service",
        name=s.name,
        code=s.code,
        status=service_status(ctx, s),
        monthly=t.money(s.monthly_fee),
        fee=t.money(s.activation_fee),
        activation=t("service.activation", fee=t.money(s.activation_fee))
        if s.activation_fee
        else "",
        description=s.description,
        url=s.url.removeprefix("https://").removeprefix("http://") if link else "",
    ).rstrip()


async def service_active(ctx: Ctx, code: str) -> bool:
    return (await ctx.backend.service(ctx.msisdn, code)).active


def numbers_text(ctx: Ctx, numbers: tuple[str, ...] | list[str]) -> str:
    return ", ".join(ctx.t.number(n) for n in numbers)


async def favourites(ctx: Ctx, kind: str) -> str:
    t = ctx.t
    f = await ctx.backend.favourites(ctx.msisdn)
    if kind == "3ija":
        if not f.three_active:
            return t("fav.3ija.inactive")
        return t("fav.3ija", numbers=numbers_text(ctx, f.three) or t("fav.none"))
    if not f.friend_active:
        return t("fav.przyjaciel.inactive")
    return t("fav.przyjaciel", number=t.number(f.friend) if f.friend else t("fav.none"))


async def address(ctx: Ctx) -> str:
    return ctx.t("address", address=str(await ctx.backend.address(ctx.msisdn)))


async def profit(ctx: Ctx) -> str:
    t = ctx.t
    p = await ctx.backend.profit(ctx.msisdn)
    if not p.member:
        return t("profit.not_member")
    joined = t.date(p.joined) if p.joined else ""
    return t("profit", points=t.count(p.points, "points"), joined=joined)


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
