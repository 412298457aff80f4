"""The SMS commands of the contract: a keyword table, argument parsing and a small state machine.

Theory of operation: a message is a keyword with arguments (``WLACZ ROAM``). Read-only commands
answer at once and leave no record. A change is quoted first and kept as a pending action in
state ``confirm`` until ``TAK <kod abonencki>`` (or ``NIE``); a letter to customer care walks
``letter_type`` → ``letter_data`` → ``letter_description`` → ``confirm``. While a change is
pending, ``TAK``/``NIE`` go to it; a read-only command in between (``PAKIET``) is answered and
leaves it pending; a new change replaces it, and the reply says so. A pending change is valid for
:data:`PENDING_VALID` seconds: a later ``TAK`` is told which change expired (the record is kept
for the dialog's TTL, longer than that). ``TAK`` with anything but six digits uses no attempt.
During a letter the answers go to it and any other command abandons it. English keywords answer
in English; neutral ones (``INFO``, ``PROFIT``) in the pending dialog's or the subscriber's
language.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from backend.clock import Clock, SystemClock
from backend.errors import ServiceError
from dialogs.catalogue import texts
from dialogs.errors import DialogInputError
from dialogs.handlers import actions, views
from dialogs.handlers.context import Ctx
from dialogs.handlers.explain import explain
from dialogs.parsing import Command, fold, menu_number, parse_command, split_numbers, squeeze
from fsm.machine import DialogMachine, Transition
from fsm.record import DialogRecord
from fsm.runtime import Inbound, Notice, Reply, Turn


class SmsState(Enum):
    idle = "idle"
    confirm = "confirm"
    letter_type = "letter_type"
    letter_data = "letter_data"
    letter_description = "letter_description"


_LETTER = ("letter_type", "letter_data", "letter_description")
TRANSITIONS = (
    Transition("done", "*", "idle"),
    Transition("ask_confirm", "*", "confirm"),
    Transition("start_letter", "*", "letter_type"),
    Transition("typed", "letter_type", "letter_data"),
    Transition("data_given", "letter_data", "letter_description"),
    Transition("retry", ("confirm", *_LETTER), "="),
)

#: Folded keyword → (command, language it answers in; None = the subscriber's).
KEYWORDS: dict[str, tuple[str, str | None]] = {
    "POMOC": ("help", "pl"), "HELP": ("help", "en"),
    "HASLO": ("password", "pl"), "PASSWORD": ("password", "en"),
    "INFO": ("info", None),
    "PAKIET": ("usage", "pl"), "USAGE": ("usage", "en"),
    "FAKTURA": ("invoice", "pl"), "INVOICE": ("invoice", "en"),
    "FAKTURY": ("invoices", "pl"), "INVOICES": ("invoices", "en"),
    "PLATNOSC": ("payment", "pl"), "PAYMENT": ("payment", "en"),
    "TARYFA": ("tariff", "pl"), "TARIFF": ("tariff", "en"),
    "USLUGI": ("services", "pl"), "SERVICES": ("services", "en"),
    "USLUGA": ("service", "pl"), "SERVICE": ("service", "en"),
    "WLACZ": ("on", "pl"), "ON": ("on", "en"),
    "WYLACZ": ("off", "pl"), "OFF": ("off", "en"),
    "3IJA": ("3ija", "pl"), "FRIENDS": ("3ija", "en"),
    "PRZYJACIEL": ("friend", "pl"), "FRIEND": ("friend", "en"),
    "ADRES": ("address", "pl"), "ADDRESS": ("address", "en"),
    "ZLECENIE": ("zlecenie", "pl"), "ORDER": ("zlecenie", "en"),
    "REKLAMACJA": ("reklamacja", "pl"), "COMPLAINT": ("reklamacja", "en"),
    "PROFIT": ("profit", None),
    "TAK": ("yes", "pl"), "YES": ("yes", "en"),
    "NIE": ("no", "pl"), "NO": ("no", "en"),
}  # fmt: skip
CHANGE_WORDS = frozenset({"ZMIEN", "CHANGE"})
#: How long a quoted change waits for ``TAK`` (seconds).
PENDING_VALID = 600.0
ALL_WORDS = frozenset({"WSZYSTKIE", "ALL"})
JOIN_WORDS = frozenset({"DOLACZ", "JOIN"})
HISTORY_WORDS = frozenset({"HISTORIA", "HISTORY"})


@dataclass(slots=True)
class Step:
    """What a command did: a final text, or a pending action / letter to continue with."""

    text: str
    pending: dict[str, Any] | None = None
    letter: dict[str, Any] | None = None
    extra: list[str] = field(default_factory=list)


Handler = Callable[[Ctx, Command], Awaitable[Step]]


#: List replies are paged so that each page fits one SMS with the longest lines (7-digit amounts).
INVOICES_PER_PAGE = 4
PROFIT_PER_PAGE = 4


def _page_number(cmd: Command, skip: int = 0) -> int:
    """``FAKTURY 2`` → 2 (``skip`` words of sub-command first); 1 when no number is given."""
    words = cmd.words[skip:]
    if not words:
        return 1
    n = menu_number(words[0])
    if n is None or n < 1 or len(words) > 1:
        raise DialogInputError("list.page")
    return n


def _paged(ctx: Ctx, items: list[views.Item], size: int, page: int, prefix: str) -> str:
    """Page ``page`` of ``items`` under ``<prefix>`` with ``<prefix>.more`` naming the next one."""
    pages = max(1, -(-len(items) // size))
    if page > pages:
        raise DialogInputError(f"{prefix}.no_page", pages=pages)
    lines = "\n".join(i.label for i in items[(page - 1) * size : page * size])
    text = ctx.t(prefix, lines=lines, page=page, pages=pages)
    if page < pages:
        text += "\n" + ctx.t(f"{prefix}.more", next=page + 1)
    return text


async def _help(ctx: Ctx, cmd: Command) -> Step:
    return Step(ctx.t("help"))


async def _password(ctx: Ctx, cmd: Command) -> Step:
    return Step(await views.password(ctx))


async def _info(ctx: Ctx, cmd: Command) -> Step:
    return Step(await views.info(ctx))


async def _usage(ctx: Ctx, cmd: Command) -> Step:
    return Step(await views.usage(ctx))


async def _invoice(ctx: Ctx, cmd: Command) -> Step:
    return Step(await views.last_invoice(ctx))


async def _invoices(ctx: Ctx, cmd: Command) -> Step:
    page = _page_number(cmd)
    items = await views.invoice_lines(ctx)
    if not items:
        return Step(ctx.t("invoices.none"))
    return Step(_paged(ctx, items, INVOICES_PER_PAGE, page, "invoices"))


async def _payment(ctx: Ctx, cmd: Command) -> Step:
    if not cmd.words or cmd.words[0] not in CHANGE_WORDS:
        if cmd.words:
            raise DialogInputError("payment.usage")
        return Step(await views.payment(ctx) + " " + ctx.t("payment.how"))
    choices = await views.payment_choices(ctx)
    wanted = " ".join(cmd.words[1:])
    if not wanted and len(choices) == 1:
        chosen = choices[0][1]
    else:
        found = [item for n, item in choices if wanted and _names_method(wanted, n, item)]
        if not found:
            methods = ", ".join(ctx.t("payment.choice", n=n, name=i.label) for n, i in choices)
            example = str(choices[0][0]) if choices else ""
            raise DialogInputError("payment.pick", methods=methods, example=example)
        chosen = found[0]
    pending = {"op": "payment", "code": chosen.value, "name": chosen.label}
    return Step(await actions.describe(ctx, pending), pending=pending)


def _names_method(wanted: str, n: int, item: views.Item) -> bool:
    """``2``, ``polecenie zapłaty``, ``polecenie`` or the code all name method 2."""
    label = fold(item.label)
    return wanted in (str(n), fold(item.value).replace("_", " "), label, label.split(" ")[0])


async def _tariff_overview(ctx: Ctx) -> str:
    """The tariff, a change waiting for its date, and the others with their prices."""
    t = ctx.t
    current = await ctx.backend.tariff(ctx.msisdn)
    info = await ctx.backend.subscriber(ctx.msisdn)
    waiting = await ctx.backend.pending_tariff(ctx.msisdn)
    chosen = (current.code, waiting.value if waiting else current.code)
    others = ", ".join(
        t("tariff.choice", code=x.code, fee=t.amount(x.monthly_fee))
        for x in await ctx.backend.tariffs()
        if x.code not in chosen and (not x.business_only or info.account_kind == "business")
    )
    return await views.tariff(ctx) + "\n" + t("tariff.how", choices=others)


async def _tariff(ctx: Ctx, cmd: Command) -> Step:
    if not cmd.words:
        return Step(await _tariff_overview(ctx))
    choices = await ctx.backend.tariffs()
    wanted = "".join(cmd.words)
    found = [x for x in choices if wanted in (fold(x.code), fold(x.name).replace(" ", ""))]
    if not found:
        example = (await views.tariff_choices(ctx) or [views.Item("", "")])[0].value
        raise DialogInputError("tariff.unknown", name=cmd.args, example=example)
    pending = {"op": "tariff", "code": found[0].code}
    return Step(await actions.describe(ctx, pending), pending=pending)


async def _services(ctx: Ctx, cmd: Command) -> Step:
    include_all = bool(cmd.words) and cmd.words[0] in ALL_WORDS
    found = await ctx.backend.services(ctx.msisdn, include_all=include_all)
    if include_all:
        mark = ctx.t("service.on_mark")
        codes = ", ".join(f"{s.code}{mark if s.active else ''}" for s in found)
        return Step(ctx.t("services.all", codes=codes))
    lines = "\n".join(f"{s.code} {s.name}" for s in found)
    return Step(ctx.t("services.mine", lines=lines) if found else ctx.t("services.mine_none"))


async def _example_service(ctx: Ctx) -> str:
    found = await ctx.backend.services(ctx.msisdn, include_all=True)
    return found[0].code if found else ""


async def _service_code(ctx: Ctx, cmd: Command, usage_key: str) -> str:
    if len(cmd.words) != 1:
        raise DialogInputError(usage_key, example=await _example_service(ctx))
    return cmd.words[0]


async def _service(ctx: Ctx, cmd: Command) -> Step:
    code = await _service_code(ctx, cmd, "service.usage")
    text = await views.service(ctx, code)
    how = "service.how_off" if await views.service_active(ctx, code) else "service.how_on"
    return Step(text + "\n" + ctx.t(how, code=code))


async def _switch(ctx: Ctx, cmd: Command, op: str) -> Step:
    code = await _service_code(ctx, cmd, f"{op}.usage")
    pending = {"op": op, "code": code}
    return Step(await actions.describe(ctx, pending), pending=pending)


async def _on(ctx: Ctx, cmd: Command) -> Step:
    return await _switch(ctx, cmd, "activate")


async def _off(ctx: Ctx, cmd: Command) -> Step:
    return await _switch(ctx, cmd, "deactivate")


async def _favourites(ctx: Ctx, cmd: Command, kind: str, count: int) -> Step:
    if not cmd.args:
        code = "3IJA" if kind == "3ija" else "PRZYJACIEL"
        how = ctx.t(f"fav.{kind}.how")
        if not await views.service_active(ctx, code):
            how = ctx.t("service.how_on", code=code)
        return Step(await views.favourites(ctx, kind) + "\n" + how)
    numbers = split_numbers(cmd.args)
    if len(numbers) != count:
        raise DialogInputError(f"fav.{kind}.usage", given=len(numbers))
    pending = {"op": "favourites", "kind": kind, "numbers": numbers}
    return Step(await actions.describe(ctx, pending), pending=pending)


async def _three(ctx: Ctx, cmd: Command) -> Step:
    return await _favourites(ctx, cmd, "3ija", 3)


async def _friend(ctx: Ctx, cmd: Command) -> Step:
    return await _favourites(ctx, cmd, "przyjaciel", 1)


async def _address(ctx: Ctx, cmd: Command) -> Step:
    if not cmd.args:
        return Step(await views.address(ctx) + "\n" + ctx.t("address.how"))
    parsed = ctx.backend.parse_address(cmd.args)
    pending = {"op": "address", "address": str(parsed)}
    return Step(await actions.describe(ctx, pending), pending=pending)


async def _letter(ctx: Ctx, cmd: Command) -> Step:
    kind = cmd.name
    items = await views.letter_types(ctx, kind)
    lines = "\n".join(f"{n} {i.label}" for n, i in enumerate(items, 1))
    return Step(ctx.t(f"letter.{kind}.types", lines=lines), letter={"kind": kind})


async def _profit(ctx: Ctx, cmd: Command) -> Step:
    if cmd.words and cmd.words[0] in JOIN_WORDS:
        pending = {"op": "profit_join"}
        return Step(await actions.describe(ctx, pending), pending=pending)
    if cmd.words and cmd.words[0] in HISTORY_WORDS:
        page = _page_number(cmd, skip=1)
        items = await views.profit_lines(ctx)
        if not items:
            return Step(ctx.t("profit.empty"))
        return Step(_paged(ctx, items, PROFIT_PER_PAGE, page, "profit.history"))
    if cmd.words:
        raise DialogInputError("profit.usage")
    member = (await ctx.backend.profit(ctx.msisdn)).member
    how = ctx.t("profit.how_history" if member else "profit.how_join")
    return Step(await views.profit(ctx) + " " + how)


COMMANDS: Mapping[str, Handler] = {
    "help": _help,
    "password": _password,
    "info": _info,
    "usage": _usage,
    "invoice": _invoice,
    "invoices": _invoices,
    "payment": _payment,
    "tariff": _tariff,
    "services": _services,
    "service": _service,
    "on": _on,
    "off": _off,
    "3ija": _three,
    "friend": _friend,
    "address": _address,
    "zlecenie": _letter,
    "reklamacja": _letter,
    "profit": _profit,
}


class SmsDialog:
    """The ``sms`` dialog for :class:`fsm.runtime.Runtime`."""

    name = "sms"
    machine = DialogMachine("sms", SmsState, TRANSITIONS, "idle")
    max_record_bytes = 4096
    reset_on_error = False

    def __init__(
        self,
        ttl: float = 3600.0,
        default_language: str = "pl",
        clock: Clock | None = None,
        pending_valid: float = PENDING_VALID,
        parts: Callable[[str], int] | None = None,
    ) -> None:
        self.parts = parts
        self.ttl = max(ttl, pending_valid)
        self.default_language = default_language
        self.clock = clock or SystemClock()
        self.pending_valid = pending_valid

    def resumes(self, inbound: Inbound, record: DialogRecord) -> bool:
        return True

    def notice(self, inbound: Inbound, data: Mapping[str, Any], kind: Notice) -> Reply:
        cmd = parse_command(inbound.text, KEYWORDS)
        lang = (cmd.lang if cmd else None) or data.get("lang") or self.default_language
        return Reply(texts(lang)(f"notice.{kind}"))

    async def _language(self, turn: Turn, cmd: Command | None) -> str:
        if cmd is not None and cmd.lang:
            return cmd.lang
        if "lang" in turn.data:
            return str(turn.data["lang"])
        try:
            info = await turn.backend.subscriber(turn.msisdn)
        except ServiceError:  # not a subscriber: the command itself will say so
            return self.default_language
        return info.language if info.language in ("pl", "en") else self.default_language

    async def handle(self, turn: Turn) -> None:
        cmd = parse_command(turn.inbound.text, KEYWORDS)
        ctx = Ctx(turn.backend, turn.msisdn, await self._language(turn, cmd), "sms")
        state = turn.state
        try:
            if state == "confirm" and (cmd is None or cmd.name in ("yes", "no")):
                await self._confirm(turn, ctx, cmd)
            elif state in _LETTER and not (state == "letter_type" and cmd and cmd.name != "no"):
                await self._letter_step(turn, ctx, cmd)
            else:
                await self._command(turn, ctx, cmd, state)
        except (ServiceError, DialogInputError) as exc:
            # A refused command ends the dialog; a pending action that was not touched stays.
            turn.reply(explain(ctx, exc))
            if turn.state == "idle":
                turn.finish()

    async def _command(self, turn: Turn, ctx: Ctx, cmd: Command | None, state: str) -> None:
        """A command; a change pending before it stays unless this one starts another."""
        held = turn.data.get("pending") if state == "confirm" else None
        if held is None:
            await self._drop(turn, state)  # a letter being written is abandoned
            state = "idle"
        if cmd is None:
            word = squeeze(turn.inbound.text).partition(" ")[0][:20]
            said = ctx.t("unknown", word=word) if word else ctx.t("help")
            self._read_only(turn, said, state, held)
            return
        if cmd.name in ("yes", "no"):
            turn.reply(ctx.t("nothing_pending"))
            await self._drop(turn, state)
            turn.finish()
            return
        step = await COMMANDS[cmd.name](ctx, cmd)
        if step.pending is None and step.letter is None:
            self._read_only(turn, step.text, state, held)
            return
        await self._drop(turn, state)
        # The same change again (a repeat) is quoted again; another one says what it replaced.
        replaced = None if actions.same_change(held, step.pending) else held
        if step.pending is not None:
            step.pending["at"] = self.clock.now().timestamp()
            turn.data.update(lang=ctx.lang, pending=step.pending)
            await turn.fire("ask_confirm")
        else:
            turn.data.update(lang=ctx.lang, letter=step.letter)
            await turn.fire("start_letter")
        turn.reply(actions.with_replaced(ctx, replaced, step.text, step.pending, self.parts))

    @staticmethod
    def _read_only(turn: Turn, text: str, state: str, held: dict[str, Any] | None) -> None:
        """Answer; a pending change stays as it was (the record is saved unchanged)."""
        turn.reply(text)
        if held is None and state == "idle":
            turn.finish()

    @staticmethod
    async def _drop(turn: Turn, state: str) -> None:
        if state != "idle":
            await turn.fire("done")
            turn.data.clear()

    async def _confirm(self, turn: Turn, ctx: Ctx, cmd: Command | None) -> None:
        pending: dict[str, Any] = turn.data["pending"]
        if cmd is None:
            await turn.fire("retry")
            turn.reply(actions.ask_code(ctx, pending, "sms"))
            return
        if cmd.name == "no":
            await turn.fire("done")
            turn.reply(ctx.t("cancelled"))
            turn.finish()
            return
        at = pending.get("at")  # None: quoted before pending changes were dated
        if at is not None and self.clock.now().timestamp() - float(at) > self.pending_valid:
            await turn.fire("done")
            turn.reply(ctx.t("pending.expired", what=actions.what(ctx, pending)))
            turn.finish()
            return
        code = "".join(cmd.args.split())
        if not code:
            await turn.fire("retry")
            turn.reply(ctx.t("confirm.need_code"))
            return
        if not actions.looks_like_code(code):  # not a code at all: no attempt used
            await turn.fire("retry")
            turn.reply(ctx.t("code.format"))
            return
        result = await actions.confirm(ctx, pending, code)
        if result.outcome == "retry":
            await turn.fire("retry")
            turn.reply(result.text)
            return
        await turn.fire("done")
        turn.reply(result.text)
        turn.finish()

    async def _letter_step(self, turn: Turn, ctx: Ctx, cmd: Command | None) -> None:
        if cmd is not None and cmd.name == "no" and not cmd.args:
            await turn.fire("done")
            turn.reply(ctx.t("cancelled"))
            turn.finish()
            return
        letter: dict[str, Any] = turn.data["letter"]
        kind = letter["kind"]
        text = squeeze(turn.inbound.text)
        if turn.state == "letter_type":
            items = await views.letter_types(ctx, kind)
            n = menu_number(text)
            if n is None or not 1 <= n <= len(items):
                await turn.fire("retry")
                turn.reply(ctx.t("letter.pick", count=len(items)))
                return
            letter.update(type=items[n - 1].value, type_name=items[n - 1].label)
            await turn.fire("typed")
            turn.reply(ctx.t(f"letter.{kind}.ask_data"))
        elif turn.state == "letter_data":
            letter["data"] = text
            await turn.fire("data_given")
            turn.reply(ctx.t("letter.ask_description"))
        else:
            if len(text) < 3:
                await turn.fire("retry")
                turn.reply(ctx.t("letter.description_short"))
                return
            pending = {"op": "letter", **letter, "description": text}
            quote = await actions.describe(ctx, pending)
            pending["at"] = self.clock.now().timestamp()
            turn.data.pop("letter")
            turn.data["pending"] = pending
            await turn.fire("ask_confirm")
            turn.reply(quote + "\n" + actions.ask_code(ctx, pending, "sms"))
