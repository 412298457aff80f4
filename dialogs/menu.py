"""The USSD menu engine: screens declared as data, one shared machine, screens of ≤ 182 characters.

Theory of operation: every :class:`Screen` is a state; its options, list picks, answers and the
``0`` (back to the parent) / ``00`` (home) / ``99`` (next page) keys become the rows of the
transition table built once from the tree. A turn reads the answer, runs the small hook of the
option or list item chosen (remember a pick, prepare a pending change), fires the event on the
shared machine and renders the screen reached. A session opens with the dialled code — ``*100#``,
or a shortcut like ``*100*3*1#`` which is replayed as answers from the root — and carries the USSD
session id; a number that is not a subscriber is refused there with a text. An aggregator's
request that arrives with answers for a session unknown here (``Inbound.dialled``) is replayed
as that dial. An option may be offered or worded by the subscriber's state (``shown``,
``label_of``: ``Włącz`` or ``Wyłącz``). A wrong answer is asked again on the same screen with
the reason. A final screen ends the session (``Reply.end``) and deletes the record; an idle
session expires after the dialog TTL (120 s), and over SMPP the gateway ends it with a text
(``gateway/ussd_idle.py``). The tree itself is in ``dialogs/ussd.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.errors import NotFound, ServiceError
from dialogs.catalogue import texts
from dialogs.errors import DialogInputError
from dialogs.handlers.context import Ctx
from dialogs.handlers.explain import explain
from dialogs.handlers.views import Item
from dialogs.parsing import dialled_path, menu_number
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
#: The catalogue key of an option's label by the subscriber's state (``Włącz`` or ``Wyłącz``).
LabelOf = Callable[[Ctx, Data], Awaitable[str]]
#: Whether an option is offered in the subscriber's state (``Dołącz`` only to non-members).
Shown = Callable[[Ctx, Data], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Option:
    key: str
    label: str  # catalogue key
    target: str
    hook: Hook | None = None
    label_of: LabelOf | None = None  # overrides ``label``
    shown: Shown | None = None  # None: always offered


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


class MenuDialog:
    """A USSD menu dialog for :class:`fsm.runtime.Runtime` over a tree of screens (root: ``root``).

    The machine is built once per tree (at start-up) and shared by every session.
    """

    name = "ussd"
    max_record_bytes = 1023
    reset_on_error = True

    def __init__(
        self, screens: Sequence[Screen], ttl: float = 120.0, default_language: str = "pl"
    ) -> None:
        self.screens: Mapping[str, Screen] = {s.id: s for s in screens}
        self.machine = DialogMachine(
            self.name, [s.id for s in screens], build_transitions(screens), "root"
        )
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
            dialled = dialled_path(turn.inbound.dialled) if turn.inbound.dialled else None
            if dialled is not None:
                path = dialled  # an aggregator's first request carrying the answers so far
            elif not turn.found:  # the session timed out (or never was): nothing to answer
                turn.reply(
                    texts(await self._language(turn) or self.default_language)("ussd.expired"),
                    end=True,
                )
                turn.finish()
                return
            else:
                path = []  # a new session id answering: start from the root
        if path is not None:
            lang = await self._language(turn)
            if lang is None:  # not a subscriber: refused at the dial, with a text
                turn.reply(texts(self.default_language)("error.not_found.subscriber"), end=True)
                turn.finish()
                return
            turn.data.clear()
            turn.data.update(sid=turn.inbound.session_id, lang=lang)
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

    async def _language(self, turn: Turn) -> str | None:
        """The subscriber's language; None when the number is not a subscriber."""
        try:
            lang = (await turn.backend.subscriber(turn.msisdn)).language
        except NotFound:
            return None
        return lang if lang in ("pl", "en") else self.default_language

    async def _finish(self, turn: Turn, ctx: Ctx, exc: ServiceError | DialogInputError) -> None:
        turn.data["result"] = explain(ctx, exc)
        await turn.fire("finish")

    async def _choose(self, turn: Turn, ctx: Ctx, key: str) -> bool:
        """Apply a menu answer on the current screen; False when it is not on the menu."""
        screen = self.screens[turn.state]
        option = next((o for o in screen.options if o.key == key), None)
        if option is not None and option.shown is not None:
            option = option if await option.shown(ctx, turn.data) else None
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
        for o in screen.options:
            if o.shown is None or await o.shown(ctx, data):
                label = await o.label_of(ctx, data) if o.label_of is not None else o.label
                parts.append(f"{o.key} {t(label)}")
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
