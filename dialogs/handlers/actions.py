"""Changes that cost money or touch personal data: told first, done after the subscriber code.

A pending action is plain data kept in the dialog record (``{"op": "activate", "code": "ROAM"}``);
``describe`` quotes it (fee, effect) without changing anything, ``confirm`` checks the subscriber
code and only then ``execute`` applies it — for switching a service on or off (the hot ones)
the code check and the change are one backend transaction. The SMS and USSD dialogs share
these, so both channels charge and word a change the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from backend.errors import LockedOut, ServiceError, WrongCode
from backend.records import Quote
from dialogs.errors import DialogInputError
from dialogs.handlers import views
from dialogs.handlers.context import Ctx
from dialogs.handlers.explain import explain

Pending = dict[str, Any]


def _quote_text(ctx: Ctx, key: str, q: Quote, **extra: Any) -> str:
    t = ctx.t
    monthly = t("fee.monthly", amount=t.money(q.monthly_fee)) if q.monthly_fee is not None else ""
    return t(
        key,
        name=q.name,
        code=q.code,
        fee=t.money(q.fee),
        monthly=monthly,
        monthly_fee=t.money(q.monthly_fee or 0),
        effective=t.date(q.effective),
        **extra,
    )


async def describe(ctx: Ctx, pending: Pending) -> str:
    """The fee and effect of ``pending``; raises ``DialogInputError`` when it would do nothing."""
    op, b, m = pending["op"], ctx.backend, ctx.msisdn
    if op in ("activate", "deactivate"):
        quote = b.quote_activation if op == "activate" else b.quote_deactivation
        q = await quote(m, pending["code"])
        if not q.changes:
            raise DialogInputError(f"{op}.already", name=q.name)
        return _quote_text(ctx, f"{op}.quote", q)
    if op == "favourites":
        q = await b.quote_favourites(m, pending["kind"], pending["numbers"])
        if not q.changes:
            raise DialogInputError(f"favourites.already.{_how_many(pending['numbers'])}")
        key = f"fav.{pending['kind']}.quote"
        return _quote_text(ctx, key, q, numbers=views.numbers_text(ctx, pending["numbers"]))
    if op == "tariff":
        return _quote_text(ctx, "tariff.quote", await b.quote_tariff_change(m, pending["code"]))
    if op == "address":
        return ctx.t("address.quote", address=pending["address"])
    if op == "payment":
        return ctx.t("payment.quote", method=pending["name"])
    if op == "letter":
        return ctx.t(f"letter.{pending['kind']}.quote", type=pending["type_name"])
    if op == "profit_join":
        if (await b.profit(m)).member:
            raise DialogInputError("profit.already")
        return ctx.t("profit.join.quote")
    raise ValueError(f"unknown pending op {op!r}")


async def execute(ctx: Ctx, pending: Pending) -> str:
    op, b, m, t, ch = pending["op"], ctx.backend, ctx.msisdn, ctx.t, ctx.channel
    if op in SWITCHES:
        return await _switch(ctx, pending)
    if op == "favourites":
        change = await b.set_favourites(m, pending["kind"], pending["numbers"], ch)
        return t(
            f"favourites.done.{_how_many(pending['numbers'])}",
            fee=t.money(change.fee),
            effective=t.date(change.effective),
        )
    if op == "tariff":
        request = await b.change_tariff(m, pending["code"], ch)
        effective = t.date(request.effective) if request.effective else ""
        return t("tariff.done", reference=request.reference, effective=effective)
    if op == "address":
        await b.change_address(m, pending["address"], ch)
        return t("address.done", address=pending["address"])
    if op == "payment":
        request = await b.request_payment_change(m, pending["code"], ch)
        return t("payment.done", reference=request.reference)
    if op == "letter":
        letter = await b.file_letter(
            m, pending["kind"], pending["type"], pending["data"], pending["description"], ch
        )
        return t(
            f"letter.{pending['kind']}.done",
            reference=letter.reference,
            status=t(f"letter.status.{letter.status}"),
        )
    if op == "profit_join":
        joined = await b.profit_join(m, ch)
        return t("profit.join.done", points=t.count(joined.points, "points"))
    raise ValueError(f"unknown pending op {op!r}")


def _how_many(numbers: list[str]) -> str:
    return "one" if len(numbers) == 1 else "many"


Outcome = Literal["done", "retry", "locked"]


@dataclass(frozen=True, slots=True)
class Confirmation:
    """``done``: applied or refused for good (text says which); ``retry``: ask the code again."""

    outcome: Outcome
    text: str


#: Pending ops whose code check and change are one backend transaction (the hot ones).
SWITCHES = ("activate", "deactivate")


async def _switch(ctx: Ctx, pending: Pending, subscriber_code: str | None = None) -> str:
    """A service switched on or off; with ``subscriber_code`` checked in the same transaction."""
    op, b, m, t = pending["op"], ctx.backend, ctx.msisdn, ctx.t
    run = b.activate if op == "activate" else b.deactivate
    change = await run(m, pending["code"], ctx.channel, subscriber_code=subscriber_code)
    name = (await b.service(m, pending["code"])).name
    return t(f"{op}.done", name=name, fee=t.money(change.fee), effective=t.date(change.effective))


async def confirm(ctx: Ctx, pending: Pending, code: str) -> Confirmation:
    try:
        if pending["op"] in SWITCHES:
            done = await _switch(ctx, pending, code)
        else:
            await ctx.backend.check_subscriber_code(ctx.msisdn, code)
            done = None
    except WrongCode as exc:
        return Confirmation("retry", ctx.t("code.wrong", left=exc.attempts_left))
    except LockedOut as exc:
        return Confirmation("locked", ctx.t("code.locked", until=ctx.t.when(exc.until)))
    except ServiceError as exc:
        if pending["op"] not in SWITCHES:
            raise  # the code check's own refusals (no such subscriber), as before
        return Confirmation("done", explain(ctx, exc))
    if done is not None:
        return Confirmation("done", done)
    try:
        return Confirmation("done", await execute(ctx, pending))
    except ServiceError as exc:
        return Confirmation("done", explain(ctx, exc))
