"""The ``*100#`` menu: screens declared as data, one shared machine, screens of ≤ 182 characters.

Theory of operation: every :class:`Screen` is a state; its options, list picks, answers and the
``0`` (back to the parent) / ``00`` (home) / ``99`` (next page) keys become the rows of the
transition table built once from :data:`SCREENS`. A turn reads the answer, runs the small hook of
the option or list item chosen (remember a pick, prepare a pending change), fires the event on the
shared machine and renders the screen reached. A session opens with the dialled code — ``*100#``,
or a shortcut like ``*100*3*1#`` which is replayed as answers from the root — and carries the USSD
session id; changes go through the same quote → subscriber code → done steps as SMS. A final
screen ends the session (``Reply.end``) and deletes the record; an idle session expires after the
dialog TTL (120 s).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.errors import ServiceError
from dialogs.catalogue import texts
from dialogs.errors import DialogInputError
from dialogs.handlers import actions, views
from dialogs.handlers.context import Ctx
from dialogs.handlers.explain import explain
from dialogs.handlers.views import Item
from dialogs.parsing import dialled_path, menu_number, split_numbers, squeeze
from fsm.machine import DialogMachine, Transition
from fsm.record import DialogRecord
from fsm.runtime import Inbound, Notice, Reply, Turn

log = logging.getLogger(__name__)

SCREEN_LIMIT = 182
Data = dict[str, Any]
View = Callable[[Ctx, Data], Awaitable[str]]
Items = Callable[[Ctx, Data], Awaitable[list[Item]]]
Hook = Callable[[Ctx, Data], Awaitable[None]]
PickHook = Callable[[Ctx, Data, Item], Awaitable[None]]
#: An answer handler returns ``"ok"`` (go on) or ``"retry"`` (ask again; ``data["note"]`` says why).
Answer = Callable[[Ctx, Data, str], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str  # catalogue key
    target: str
    hook: Hook | None = None


@dataclass(frozen=True, slots=True)
class Screen:
    id: str
    parent: str | None
    title: str | None = None  # catalogue key of a fixed heading
    view: View | None = None  # body text from the backend
    options: tuple[Option, ...] = ()
    items: Items | None = None  # a list, paged with 99
    pick: str | None = None  # where picking a list item leads (None: the list is not numbered)
    on_pick: PickHook | None = None
    answer: Answer | None = None  # a free-text answer (address, numbers, subscriber code)
    ok: str | None = None  # where an accepted answer leads
    final: bool = False


# -- views, hooks and answers ---------------------------------------------------------------------


def _static(fn: Callable[[Ctx], Awaitable[str]]) -> View:
    async def view(ctx: Ctx, data: Data) -> str:
        return await fn(ctx)

    return view


async def _service_view(ctx: Ctx, data: Data) -> str:
    return await views.service(ctx, data["sel"])


async def _select(ctx: Ctx, data: Data, item: Item) -> None:
    data["sel"] = item.value


async def _toggle(ctx: Ctx, data: Data) -> None:
    active = await views.service_active(ctx, data["sel"])
    data["pending"] = {"op": "deactivate" if active else "activate", "code": data["sel"]}


async def _pick_payment(ctx: Ctx, data: Data, item: Item) -> None:
    data["pending"] = {"op": "payment", "code": item.value, "name": item.label}


async def _pick_tariff(ctx: Ctx, data: Data, item: Item) -> None:
    data["pending"] = {"op": "tariff", "code": item.value}


async def _profit_join(ctx: Ctx, data: Data) -> None:
    data["pending"] = {"op": "profit_join"}


async def _confirm_view(ctx: Ctx, data: Data) -> str:
    if data.get("note"):  # asked again after a wrong code: the quote was shown already
        return ctx.t("ussd.ask_code")
    return await actions.describe(ctx, data["pending"]) + "\n" + ctx.t("ussd.ask_code")


async def _confirm_answer(ctx: Ctx, data: Data, text: str) -> str:
    result = await actions.confirm(ctx, data["pending"], "".join(text.split()))
    if result.outcome == "retry":
        data["note"] = result.text
        return "retry"
    data.pop("pending", None)
    data["result"] = result.text
    return "ok"


async def _address_answer(ctx: Ctx, data: Data, text: str) -> str:
    data["pending"] = {"op": "address", "address": str(ctx.backend.parse_address(text))}
    return "ok"


def _numbers_answer(kind: str, count: int) -> Answer:
    async def answer(ctx: Ctx, data: Data, text: str) -> str:
        numbers = split_numbers(text)
        if len(numbers) != count:
            raise DialogInputError(f"fav.{kind}.usage", given=len(numbers))
        data["pending"] = {"op": "favourites", "kind": kind, "numbers": numbers}
        return "ok"

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
            options=(Option("1", "ussd.opt.toggle", f"{id}.item.ok", _toggle),),
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
            Option("1", "ussd.opt.history", "profit.history"),
            Option("2", "ussd.opt.join", "profit.join", _profit_join),
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


def build_transitions(screens: Sequence[Screen]) -> list[Transition]:
    """The table: options, picks, answers, back, more, home and the final ``finish``."""
    rows = [Transition("home", "*", "root"), Transition("finish", "*", "end")]
    for s in screens:
        if s.parent is not None:
            rows.append(Transition("back", s.id, s.parent))
        rows += [Transition(f"opt{o.key}", s.id, o.target) for o in s.options]
        if s.items is not None:
            rows.append(Transition("more", s.id, "="))
        if s.pick is not None:
            rows.append(Transition("pick", s.id, s.pick))
        if s.answer is not None and s.ok is not None:
            rows += [Transition("ok", s.id, s.ok), Transition("retry", s.id, "=")]
    return rows


@dataclass(frozen=True, slots=True)
class Page:
    lines: list[str]
    more: bool


class UssdDialog:
    """The ``ussd`` dialog for :class:`fsm.runtime.Runtime`."""

    name = "ussd"
    max_record_bytes = 1023
    reset_on_error = True
    screens: Mapping[str, Screen] = {s.id: s for s in SCREENS}
    machine = DialogMachine("ussd", [s.id for s in SCREENS], build_transitions(SCREENS), "root")

    def __init__(self, ttl: float = 120.0, default_language: str = "pl") -> None:
        self.ttl = ttl
        self.default_language = default_language
        #: Screens cut to fit 182 characters (should stay 0: the tree walk test checks it).
        self.overflows = 0

    def resumes(self, inbound: Inbound, record: DialogRecord) -> bool:
        return dialled_path(inbound.text) is None and record.data.get("sid") == inbound.session_id

    def notice(self, inbound: Inbound, data: Mapping[str, Any], kind: Notice) -> Reply:
        lang = str(data.get("lang") or self.default_language)
        return Reply(texts(lang)(f"notice.{kind}"), end=True)

    async def handle(self, turn: Turn) -> None:
        path = dialled_path(turn.inbound.text)
        if path is None and not turn.resumed:
            if not turn.found:  # the session timed out (or never was): nothing to answer
                turn.reply(texts(await self._language(turn))("ussd.expired"), end=True)
                turn.finish()
                return
            path = []  # a new session id answering: start from the root
        if path is not None:
            turn.data.clear()
            turn.data.update(sid=turn.inbound.session_id, lang=await self._language(turn))
        ctx = Ctx(turn.backend, turn.msisdn, str(turn.data["lang"]), "ussd")
        try:
            if path is not None:
                for key in path:
                    if not await self._choose(turn, ctx, key):
                        turn.data["note"] = ctx.t("ussd.hint")
                        break
                    if self.screens[turn.state].answer is not None:
                        break
            else:
                await self._answer(turn, ctx, turn.inbound.text.strip())
        except (ServiceError, DialogInputError) as exc:
            if self.screens[turn.state].answer is None:
                await self._finish(turn, ctx, exc)
            else:  # a wrong answer: ask again, saying what is wrong
                turn.data["note"] = explain(ctx, exc)
        try:
            await self._render(turn, ctx)
        except (ServiceError, DialogInputError) as exc:
            # The screen cannot be shown (nothing to change, service refused): say why and end.
            await self._finish(turn, ctx, exc)
            await self._render(turn, ctx)

    async def _language(self, turn: Turn) -> str:
        try:
            lang = (await turn.backend.subscriber(turn.msisdn)).language
        except ServiceError:
            return self.default_language
        return lang if lang in ("pl", "en") else self.default_language

    async def _finish(self, turn: Turn, ctx: Ctx, exc: ServiceError | DialogInputError) -> None:
        turn.data["result"] = explain(ctx, exc)
        await turn.fire("finish")

    async def _choose(self, turn: Turn, ctx: Ctx, key: str) -> bool:
        """Apply a menu answer on the current screen; False when it is not on the menu."""
        screen = self.screens[turn.state]
        option = next((o for o in screen.options if o.key == key), None)
        if option is not None:
            if option.hook is not None:
                await option.hook(ctx, turn.data)
            await self._move(turn, f"opt{key}")
            return True
        n = menu_number(key)
        if screen.items is not None and screen.pick is not None and n is not None and n >= 1:
            items = await screen.items(ctx, turn.data)
            if n <= len(items):
                if screen.on_pick is not None:
                    await screen.on_pick(ctx, turn.data, items[n - 1])
                await self._move(turn, "pick")
                return True
        return False

    async def _move(self, turn: Turn, trigger: str) -> None:
        turn.data.pop("page", None)
        turn.data.pop("note", None)
        await turn.fire(trigger)

    async def _answer(self, turn: Turn, ctx: Ctx, text: str) -> None:
        screen = self.screens[turn.state]
        turn.data.pop("note", None)
        if text == "00":
            await self._move(turn, "home")
        elif text == "0" and screen.parent is not None:
            await self._move(turn, "back")
        elif text == "99" and screen.items is not None:
            page = int(turn.data.get("page", 0)) + 1
            if page < len(await self._pages(ctx, turn.data, screen)):
                await turn.fire("more")
                turn.data["page"] = page
            else:
                turn.data["note"] = ctx.t("ussd.no_more")
        elif screen.answer is not None and text not in ("0", "99"):
            outcome = await screen.answer(ctx, turn.data, text)
            if outcome == "ok":
                await self._move(turn, "ok")
            else:
                await turn.fire("retry")
        elif not await self._choose(turn, ctx, text):
            turn.data["note"] = ctx.t("ussd.hint")

    async def _pages(self, ctx: Ctx, data: Data, screen: Screen) -> list[Page]:
        assert screen.items is not None
        items = await screen.items(ctx, data)
        if not items:
            return [Page([ctx.t("ussd.empty")], False)]
        lines = [f"{n} {i.label}" if screen.pick else i.label for n, i in enumerate(items, 1)]
        head = len(ctx.t(screen.title)) + 1 if screen.title else 0
        budget = SCREEN_LIMIT - head - len(ctx.t("ussd.nav")) - len(ctx.t("ussd.more")) - 3
        # Room for a one-line note (hint, end of list) is kept, so pages never shift.
        budget -= max(len(ctx.t("ussd.hint")), len(ctx.t("ussd.no_more"))) + 1
        pages: list[list[str]] = [[]]
        used = 0
        for line in lines:
            if pages[-1] and used + len(line) + 1 > budget:
                pages.append([])
                used = 0
            pages[-1].append(line)
            used += len(line) + 1
        return [Page(p, n < len(pages) - 1) for n, p in enumerate(pages)]

    async def _render(self, turn: Turn, ctx: Ctx) -> None:
        screen = self.screens[turn.state]
        t, data = ctx.t, turn.data
        parts: list[str] = []
        if data.get("note"):
            parts.append(str(data["note"]))
        if screen.title:
            parts.append(t(screen.title))
        if screen.view is not None:
            parts.append(await screen.view(ctx, data))
        parts += [f"{o.key} {t(o.label)}" for o in screen.options]
        footer = []
        if screen.items is not None:
            pages = await self._pages(ctx, data, screen)
            page = pages[min(int(data.get("page", 0)), len(pages) - 1)]
            parts += page.lines
            if page.more:
                footer.append(t("ussd.more"))
        if not screen.final and screen.parent is not None:
            footer.append(t("ussd.nav"))
        if footer:
            parts.append(" ".join(footer))
        text = "\n".join(p for p in parts if p)
        if len(text) > SCREEN_LIMIT:
            self.overflows += 1
            log.warning("USSD screen over %d characters", SCREEN_LIMIT, extra={"screen": screen.id})
            text = text[: SCREEN_LIMIT - 1] + "…"
        turn.reply(text, end=screen.final)
        if screen.final:
            turn.finish()
