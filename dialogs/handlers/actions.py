"""Changes that cost money or touch personal data: told first, done after the subscriber code.

A pending action is plain data kept in the dialog record (``{"op": "activate", "code": "ROAM"}``);
``describe`` validates and quotes it (fee, effect) without changing anything — a change that
would do nothing, is not allowed, or waits for a locked-out code is refused there, before any
code is asked — and ``ask_code`` names the code it needs; ``confirm`` checks the subscriber code
and only then ``execute`` applies it. For switching a service on or off (the hot ones) and for
the changes of a whole account (address, payment method: on a business account the account code)
the code check and the change are one backend transaction. The SMS and USSD dialogs share
these, so both channels charge and word a change the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from backend.errors import LockedOut, NotAccountCode, ServiceError, WrongCode
from backend.records import Quote
from dialogs.errors import DialogInputError
from dialogs.handlers import views
from dialogs.handlers.context import Ctx
from dialogs.handlers.explain import explain
from dialogs.settings import PartCounter

Pending = dict[str, Any]

#: What a subscriber code (and an account code) looks like: anything else is not a guess.
_CODE_SHAPE = re.compile(r"\d{6}")


def looks_like_code(text: str) -> bool:
    """Six digits: only such an answer is checked (and can use up an attempt)."""
    return _CODE_SHAPE.fullmatch(text) is not None


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


#: Pending ops that change a whole account → the backend's name of the change.
ACCOUNT_OPS = {"address": "address", "payment": "payment_method"}


async def describe(ctx: Ctx, pending: Pending) -> str:
    """The fee and effect of ``pending`` (its code scope noted in it); raises
    ``DialogInputError`` when it would do nothing or its code is locked out now."""
    op: str = pending["op"]
    text = await _describe(ctx, pending)
    gate = await ctx.backend.code_gate(ctx.msisdn, ACCOUNT_OPS.get(op, op))
    if gate.locked_until is not None:
        key = "code.account_locked_now" if gate.scope == "account" else "code.locked_now"
        raise DialogInputError(key, until=ctx.t.when(gate.locked_until))
    pending["scope"] = gate.scope
    return text


def ask_code(ctx: Ctx, pending: Pending, channel: str, *, short: bool = False) -> str:
    """The request for the code ``pending`` needs, by name (after :func:`describe`); ``short``:
    the SMS form without the example, beside a note that a pending change was replaced."""
    account = pending.get("scope") == "account"
    if channel == "ussd":
        return ctx.t("ussd.ask_account_code" if account else "ussd.ask_code")
    key = "confirm.ask_account_sms" if account else "confirm.ask_sms"
    return ctx.t(key + "_short" if short else key)


def what(ctx: Ctx, pending: Pending) -> str:
    """A few words naming the pending change (for "replaced" and "expired" notes)."""
    return ctx.t(f"op.{pending['op']}", code=pending.get("code", ""))


def with_replaced(
    ctx: Ctx,
    replaced: Pending | None,
    text: str,
    pending: Pending | None,
    parts: PartCounter | None,
) -> str:
    """``text`` (and, for a change, the request for its code) told that it replaced the pending
    change ``replaced`` (None: it replaced nothing), in words that cost no part more than
    without the note: the note naming the change, else a short note with a short request for
    the code, else no note (the prompt itself says what ``TAK`` now confirms)."""

    def reply(note: str, short: bool) -> str:
        ask = "\n" + ask_code(ctx, pending, "sms", short=short) if pending is not None else ""
        return (note + "\n" if note else "") + text + ask

    bare = reply("", False)
    if replaced is None:
        return bare
    full = reply(ctx.t("pending.replaced", what=what(ctx, replaced)), False)
    if parts is None:
        return full
    budget = parts(bare)
    for candidate in (full, reply(ctx.t("pending.replaced_short"), True)):
        if parts(candidate) <= budget:
            return candidate
    return bare


def same_change(held: Pending | None, new: Pending | None) -> bool:
    """Whether two pending changes are the same change (when and which code aside)."""
    if held is None or new is None:
        return False
    aside = ("at", "scope")
    return {k: v for k, v in held.items() if k not in aside} == {
        k: v for k, v in new.items() if k not in aside
    }


async def _describe(ctx: Ctx, pending: Pending) -> str:
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
        q = await b.quote_tariff_change(m, pending["code"])
        if not q.changes:
            raise DialogInputError("tariff.already")
        return _quote_text(ctx, "tariff.quote", q)
    if op == "address":
        if str(await b.address(m)) == pending["address"]:
            raise DialogInputError("address.same")
        return ctx.t("address.quote", address=pending["address"])
    if op == "payment":
        payment = await b.payment(m)
        if payment.method.code == pending["code"]:
            raise DialogInputError("error.payment_same")
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


async def _account_change(ctx: Ctx, pending: Pending, subscriber_code: str) -> str:
    """A change of the whole account: the backend checks the code in the change's transaction."""
    op, b, m, t, ch = pending["op"], ctx.backend, ctx.msisdn, ctx.t, ctx.channel
    if op == "address":
        await b.change_address(m, pending["address"], ch, subscriber_code=subscriber_code)
        return t("address.done", address=pending["address"])
    request = await b.request_payment_change(
        m, pending["code"], ch, subscriber_code=subscriber_code
    )
    return t("payment.done", reference=request.reference)


async def confirm(ctx: Ctx, pending: Pending, code: str) -> Confirmation:
    op = pending["op"]
    in_one = op in SWITCHES or op in ACCOUNT_OPS  # the code checked in the change's transaction
    try:
        if op in SWITCHES:
            done: str | None = await _switch(ctx, pending, code)
        elif op in ACCOUNT_OPS:
            done = await _account_change(ctx, pending, code)
        else:
            await ctx.backend.check_subscriber_code(ctx.msisdn, code)
            done = None
    except NotAccountCode:
        return Confirmation("retry", ctx.t("code.not_account"))
    except WrongCode as exc:
        key = "code.account_wrong" if exc.scope == "account" else "code.wrong"
        return Confirmation("retry", ctx.t(key, left=exc.attempts_left))
    except LockedOut as exc:
        key = "code.account_locked" if exc.scope == "account" else "code.locked"
        return Confirmation("locked", ctx.t(key, until=ctx.t.when(exc.until)))
    except ServiceError as exc:
        if not in_one:
            raise  # the code check's own refusals (no such subscriber), as before
        return Confirmation("done", explain(ctx, exc))
    if done is not None:
        return Confirmation("done", done)
    try:
        return Confirmation("done", await execute(ctx, pending))
    except ServiceError as exc:
        return Confirmation("done", explain(ctx, exc))
