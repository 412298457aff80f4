"""The ``*100#`` tree of the contract, as data: 1 Konto · 2 Pakiet · 3 Usługi · 4 Trzy i Ja /
Przyjaciel · 5 Płatności i faktury · 6 Taryfa · 7 Hasło do Idea24 · 8 Profit · 9 Kontakt z BOK.

Screens name catalogue keys and small async views/hooks/answers; changes go through the same
quote → subscriber code → done steps as SMS (``dialogs/handlers/actions.py``). The engine that
runs the tree is ``dialogs/menu.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dialogs.errors import DialogInputError
from dialogs.handlers import actions, views
from dialogs.handlers.context import Ctx
from dialogs.handlers.views import Item
from dialogs.menu import (
    SCREEN_LIMIT,
    Answer,
    Data,
    Items,
    MenuDialog,
    Option,
    PickHook,
    Screen,
    View,
)
from dialogs.parsing import split_numbers, squeeze

__all__ = ["SCREENS", "SCREEN_LIMIT", "UssdDialog"]

# -- views, hooks and answers ---------------------------------------------------------------------


def _static(fn: Callable[[Ctx], Awaitable[str]]) -> View:
    async def view(ctx: Ctx, data: Data) -> str:
        return await fn(ctx)

    return view


async def _service_view(ctx: Ctx, data: Data) -> str:
    return await views.service(ctx, data["sel"], link=False)


async def _select(ctx: Ctx, data: Data, item: Item) -> None:
    data["sel"] = item.value


async def _toggle(ctx: Ctx, data: Data) -> None:
    active = await views.service_active(ctx, data["sel"])
    data["pending"] = {"op": "deactivate" if active else "activate", "code": data["sel"]}


async def _toggle_label(ctx: Ctx, data: Data) -> str:
    """``Włącz`` for a service that is off, ``Wyłącz`` for one that is on."""
    return "ussd.opt.off" if await views.service_active(ctx, data["sel"]) else "ussd.opt.on"


async def _member(ctx: Ctx, data: Data) -> bool:
    return (await ctx.backend.profit(ctx.msisdn)).member


async def _not_member(ctx: Ctx, data: Data) -> bool:
    return not await _member(ctx, data)


async def _pick_payment(ctx: Ctx, data: Data, item: Item) -> None:
    data["pending"] = {"op": "payment", "code": item.value, "name": item.label}


async def _pick_tariff(ctx: Ctx, data: Data, item: Item) -> None:
    data["pending"] = {"op": "tariff", "code": item.value}


async def _profit_join(ctx: Ctx, data: Data) -> None:
    data["pending"] = {"op": "profit_join"}


async def _quote(ctx: Ctx, data: Data, pending: actions.Pending) -> str:
    """Quote ``pending`` while the subscriber is still on the screen that asked for it: a change
    that cannot be made (own or repeated number, nothing to change) is said there, and the same
    screen asks again."""
    data["quote"] = [pending, await actions.describe(ctx, pending)]
    data["pending"] = pending
    return "ok"


async def _confirm_view(ctx: Ctx, data: Data) -> str:
    pending = data["pending"]
    if data.get("note"):  # asked again after a wrong code: the quote was shown already
        return actions.ask_code(ctx, pending, "ussd")
    quoted = data.get("quote")
    if quoted and quoted[0] == pending:
        quote = str(quoted[1])
    else:
        quote = await actions.describe(ctx, pending)
    return quote + "\n" + actions.ask_code(ctx, pending, "ussd")


async def _confirm_answer(ctx: Ctx, data: Data, text: str) -> str:
    code = "".join(text.split())
    if not actions.looks_like_code(code):  # not a code at all: no attempt used
        data["note"] = ctx.t("ussd.code_format")
        return "retry"
    result = await actions.confirm(ctx, data["pending"], code)
    if result.outcome == "retry":
        data["note"] = result.text
        return "retry"
    data.pop("pending", None)
    data.pop("quote", None)
    data["result"] = result.text
    return "ok"


async def _address_answer(ctx: Ctx, data: Data, text: str) -> str:
    address = str(ctx.backend.parse_address(text))
    return await _quote(ctx, data, {"op": "address", "address": address})


def _numbers_answer(kind: str, count: int) -> Answer:
    async def answer(ctx: Ctx, data: Data, text: str) -> str:
        numbers = split_numbers(text)
        if len(numbers) != count:
            raise DialogInputError(f"fav.{kind}.count", given=len(numbers))
        return await _quote(ctx, data, {"op": "favourites", "kind": kind, "numbers": numbers})

    return answer


def _favourites_view(kind: str) -> View:
    async def view(ctx: Ctx, data: Data) -> str:
        return await views.favourites(ctx, kind)

    return view


def _letter_types(kind: str) -> Items:
    async def items(ctx: Ctx, data: Data) -> list[Item]:
        return await views.letter_types(ctx, kind)

    return items


def _pick_letter(kind: str) -> PickHook:
    async def pick(ctx: Ctx, data: Data, item: Item) -> None:
        data["letter"] = {"kind": kind, "type": item.value, "type_name": item.label}

    return pick


LETTER_DATA_LIMIT = 120
LETTER_DESCRIPTION_LIMIT = 160


async def _letter_data(ctx: Ctx, data: Data, text: str) -> str:
    if len(text) > LETTER_DATA_LIMIT:
        raise DialogInputError("ussd.too_long", limit=LETTER_DATA_LIMIT)
    data["letter"]["data"] = squeeze(text)
    return "ok"


async def _letter_description(ctx: Ctx, data: Data, text: str) -> str:
    clean = squeeze(text)
    if len(clean) < 3:
        raise DialogInputError("letter.description_short")
    if len(clean) > LETTER_DESCRIPTION_LIMIT:
        raise DialogInputError("ussd.too_long", limit=LETTER_DESCRIPTION_LIMIT)
    data["pending"] = {"op": "letter", **data.pop("letter"), "description": clean}
    return "ok"


async def _result(ctx: Ctx, data: Data) -> str:
    return str(data.get("result", ""))


async def _services_all(ctx: Ctx, data: Data) -> list[Item]:
    return await views.service_items(ctx, True)


async def _services_mine(ctx: Ctx, data: Data) -> list[Item]:
    return await views.service_items(ctx, False)


def _list(fn: Callable[[Ctx], Awaitable[list[Item]]]) -> Items:
    async def items(ctx: Ctx, data: Data) -> list[Item]:
        return await fn(ctx)

    return items


# -- the tree --------------------------------------------------------------------------------------


def _confirm(id: str, parent: str) -> Screen:
    return Screen(id, parent, view=_confirm_view, answer=_confirm_answer, ok="end")


def _services_branch(id: str, title: str, items: Items) -> list[Screen]:
    return [
        Screen(id, "svc", title=title, items=items, pick=f"{id}.item", on_pick=_select),
        Screen(
            f"{id}.item",
            id,
            view=_service_view,
            options=(Option("1", "ussd.opt.on", f"{id}.item.ok", _toggle, label_of=_toggle_label),),
        ),
        _confirm(f"{id}.item.ok", f"{id}.item"),
    ]


def _favourites_branch(kind: str, count: int) -> list[Screen]:
    id = f"fav.{kind}"
    return [
        Screen(
            id,
            "fav",
            view=_favourites_view(kind),
            options=(Option("1", "ussd.opt.change", f"{id}.new"),),
        ),
        Screen(
            f"{id}.new",
            id,
            title=f"ussd.ask.{kind}",
            answer=_numbers_answer(kind, count),
            ok=f"{id}.ok",
        ),
        _confirm(f"{id}.ok", f"{id}.new"),
    ]


def _letter_branch(kind: str) -> list[Screen]:
    id = f"care.{kind}"
    return [
        Screen(
            id,
            "care",
            title=f"ussd.title.{kind}",
            items=_letter_types(kind),
            pick=f"{id}.data",
            on_pick=_pick_letter(kind),
        ),
        Screen(
            f"{id}.data", id, title=f"letter.{kind}.ask_data", answer=_letter_data, ok=f"{id}.desc"
        ),
        Screen(
            f"{id}.desc",
            f"{id}.data",
            title="letter.ask_description",
            answer=_letter_description,
            ok=f"{id}.ok",
        ),
        _confirm(f"{id}.ok", f"{id}.desc"),
    ]


ROOT_OPTIONS = (
    Option("1", "ussd.opt.account", "acct"),
    Option("2", "ussd.opt.usage", "usage"),
    Option("3", "ussd.opt.services", "svc"),
    Option("4", "ussd.opt.favourites", "fav"),
    Option("5", "ussd.opt.payments", "pay"),
    Option("6", "ussd.opt.tariff", "tariff"),
    Option("7", "ussd.opt.password", "password"),
    Option("8", "ussd.opt.profit", "profit"),
    Option("9", "ussd.opt.care", "care"),
)

SCREENS: tuple[Screen, ...] = (
    Screen("root", None, title="ussd.title.root", options=ROOT_OPTIONS),
    Screen(
        "acct",
        "root",
        view=_static(views.info),
        options=(Option("1", "ussd.opt.address", "acct.addr"),),
    ),
    Screen(
        "acct.addr",
        "acct",
        view=_static(views.address),
        options=(Option("1", "ussd.opt.change", "acct.addr.new"),),
    ),
    Screen(
        "acct.addr.new",
        "acct.addr",
        title="ussd.ask.address",
        answer=_address_answer,
        ok="acct.addr.ok",
    ),
    _confirm("acct.addr.ok", "acct.addr.new"),
    Screen("usage", "root", view=_static(views.usage)),
    Screen(
        "svc",
        "root",
        title="ussd.title.services",
        options=(
            Option("1", "ussd.opt.my_services", "svc.mine"),
            Option("2", "ussd.opt.all_services", "svc.all"),
        ),
    ),
    *_services_branch("svc.mine", "ussd.title.my_services", _services_mine),
    *_services_branch("svc.all", "ussd.title.all_services", _services_all),
    Screen(
        "fav",
        "root",
        title="ussd.title.favourites",
        options=(
            Option("1", "ussd.opt.3ija", "fav.3ija"),
            Option("2", "ussd.opt.przyjaciel", "fav.przyjaciel"),
        ),
    ),
    *_favourites_branch("3ija", 3),
    *_favourites_branch("przyjaciel", 1),
    Screen(
        "pay",
        "root",
        title="ussd.title.payments",
        options=(
            Option("1", "ussd.opt.invoice", "pay.invoice"),
            Option("2", "ussd.opt.invoices", "pay.invoices"),
            Option("3", "ussd.opt.method", "pay.method"),
        ),
    ),
    Screen("pay.invoice", "pay", view=_static(views.last_invoice)),
    Screen("pay.invoices", "pay", title="ussd.title.invoices", items=_list(views.invoice_lines)),
    Screen(
        "pay.method",
        "pay",
        view=_static(views.payment),
        options=(Option("1", "ussd.opt.change", "pay.method.new"),),
    ),
    Screen(
        "pay.method.new",
        "pay.method",
        title="ussd.title.methods",
        items=_list(views.payment_methods),
        pick="pay.method.ok",
        on_pick=_pick_payment,
    ),
    _confirm("pay.method.ok", "pay.method.new"),
    Screen(
        "tariff",
        "root",
        view=_static(views.tariff),
        options=(Option("1", "ussd.opt.change_tariff", "tariff.new"),),
    ),
    Screen(
        "tariff.new",
        "tariff",
        title="ussd.title.tariffs",
        items=_list(views.tariff_choices),
        pick="tariff.ok",
        on_pick=_pick_tariff,
    ),
    _confirm("tariff.ok", "tariff.new"),
    Screen("password", None, view=_static(views.password), final=True),
    Screen(
        "profit",
        "root",
        view=_static(views.profit),
        options=(
            Option("1", "ussd.opt.history", "profit.history", shown=_member),
            Option("2", "ussd.opt.join", "profit.join", _profit_join, shown=_not_member),
        ),
    ),
    Screen("profit.history", "profit", title="ussd.title.history", items=_list(views.profit_lines)),
    _confirm("profit.join", "profit"),
    Screen(
        "care",
        "root",
        title="ussd.title.care",
        options=(
            Option("1", "ussd.opt.zlecenie", "care.zlecenie"),
            Option("2", "ussd.opt.reklamacja", "care.reklamacja"),
        ),
    ),
    *_letter_branch("zlecenie"),
    *_letter_branch("reklamacja"),
    Screen("end", None, view=_result, final=True),
)


class UssdDialog(MenuDialog):
    """The ``ussd`` dialog: the *100# tree on the menu engine."""

    def __init__(self, ttl: float = 120.0, default_language: str = "pl") -> None:
        super().__init__(SCREENS, ttl, default_language)
