"""Replaying a conversation script against a running server, through the simulator.

Theory of operation. :func:`replay` walks the steps of a :class:`~simulator.script.Script` over
a :class:`Target`: the simulator's HTTP API (:class:`HttpTarget`, used by ``idea24 simulator
--replay FILE``) or the simulator in this process (:class:`SmscTarget`, behind ``POST
/api/v1/replay`` and the web handset's replay button). The target starts listening before the
first step, so an SMS reply is never missed; each handset's SMS replies queue up in arrival
order and each ``expect`` that is not about a USSD screen takes the next one. The result lists
every step with ``ok`` and, for a failure, what was expected against what came;
:func:`format_report` prints it as a readable diff (``-`` expected, ``+`` got).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from simulator.script import Script, ScriptError, Step, load
from simulator.smsc import Smsc
from simulator.store import HandsetMessage
from simulator.ussd import UssdTimeout
from simulator.ussd_network import UssdError

_STREAM = aiohttp.ClientTimeout(total=None, sock_read=None)


class ReplayError(RuntimeError):
    """The target refused an action (no ESME bound, no open USSD session, bad request...)."""


@dataclass(frozen=True, slots=True)
class Screen:
    """A USSD screen as the handset shows it."""

    text: str
    end: bool


class Target(Protocol):
    """What a replay drives: handsets sending, dialling and receiving."""

    def listen(self, msisdns: list[str]) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def send(self, msisdn: str, to: str | None, text: str, within: float) -> None: ...
    async def ussd(self, msisdn: str, text: str, within: float) -> Screen: ...
    async def next_sms(self, msisdn: str, within: float) -> str | None: ...


@dataclass(slots=True)
class StepResult:
    index: int
    step: Step
    ok: bool
    got: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "step": self.step.describe(),
            "ok": self.ok,
            "got": self.got,
            "problem": self.problem,
        }


@dataclass(slots=True)
class ReplayResult:
    script: Script
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.steps) == len(self.script.steps) and all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.script.name,
            "ok": self.ok,
            "steps": [s.as_dict() for s in self.steps],
            "total": len(self.script.steps),
        }


async def replay(script: Script, target: Target) -> ReplayResult:
    """Run every step until the first failure."""
    result = ReplayResult(script)
    screens: dict[str, Screen | None] = {}  # the USSD screen an expect on that handset reads
    async with target.listen(script.handsets):
        for index, step in enumerate(script.steps, 1):
            outcome = await _run(step, target, screens)
            outcome.index = index
            result.steps.append(outcome)
            if not outcome.ok:
                break
    return result


async def _run(step: Step, target: Target, screens: dict[str, Screen | None]) -> StepResult:
    try:
        if step.action == "send":
            screens[step.msisdn] = None
            await target.send(step.msisdn, step.to, step.value, step.within)
            return StepResult(0, step, True)
        if step.action in ("dial", "answer"):
            screens[step.msisdn] = await target.ussd(step.msisdn, step.value, step.within)
            return StepResult(0, step, True)
    except ReplayError as exc:
        screens[step.msisdn] = None
        return StepResult(0, step, False, problem=str(exc))
    screen = screens.pop(step.msisdn, None)
    if screen is not None:
        got = screen.text
        if step.end is not None and screen.end != step.end:
            state = "ended" if screen.end else "still open"
            return StepResult(0, step, False, got, f"the USSD session is {state}")
    else:
        sms = await target.next_sms(step.msisdn, step.within)
        if sms is None:
            return StepResult(0, step, False, None, f"no SMS within {step.within:g}s")
        got = sms
    if re.search(step.value, got, re.DOTALL) is None:
        return StepResult(0, step, False, got, "the text does not match")
    return StepResult(0, step, True, got)


def format_report(result: ReplayResult) -> str:
    """``ok``/``FAIL`` per step; a failure shows ``- expected`` against ``+ got``."""
    lines = [f"replay {result.script.name}: {len(result.script.steps)} steps"]
    for r in result.steps:
        lines.append(f"  {'ok  ' if r.ok else 'FAIL'} {r.index:>3}  {r.step.describe()}")
        if r.ok:
            continue
        lines.append(f"            {r.problem}")
        if r.step.action == "expect":
            lines.append(f"            - expected /{r.step.value}/")
            got = "(nothing)" if r.got is None else r.got
            for n, line in enumerate(got.splitlines() or [""]):
                lines.append(f"            {'+ got ' if n == 0 else '      '}{line}")
    skipped = len(result.script.steps) - len(result.steps)
    if skipped:
        lines.append(f"  ({skipped} later steps not run)")
    lines.append("PASS" if result.ok else "FAIL")
    return "\n".join(lines)


class _Inboxes:
    """Each handset's SMS replies in arrival order, every message counted once."""

    def __init__(self, msisdns: list[str]) -> None:
        self.queues: dict[str, asyncio.Queue[str]] = {m: asyncio.Queue() for m in msisdns}
        self._seen: set[object] = set()

    def add(self, message: dict[str, Any] | HandsetMessage) -> None:
        m = message.as_dict() if isinstance(message, HandsetMessage) else message
        queue = self.queues.get(str(m["msisdn"]))
        if queue is None or m["direction"] != "mt" or m["kind"] != "sms" or m["id"] in self._seen:
            return
        self._seen.add(m["id"])  # a receipt sends the same message again
        queue.put_nowait(str(m["text"]))

    async def next(self, msisdn: str, within: float) -> str | None:
        try:
            async with asyncio.timeout(within):
                return await self.queues[msisdn].get()
        except TimeoutError:
            return None


class SmscTarget:
    """The simulator in this process."""

    def __init__(self, smsc: Smsc, short_code: str) -> None:
        self.smsc = smsc
        self.short_code = short_code
        self._inboxes = _Inboxes([])

    @contextlib.asynccontextmanager
    async def listen(self, msisdns: list[str]) -> AsyncIterator[None]:
        self._inboxes = inboxes = _Inboxes(msisdns)
        queue = self.smsc.store.subscribe(receipts=False, backlog=None)

        async def pump() -> None:
            while (message := await queue.get()) is not None:
                inboxes.add(message)

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            self.smsc.store.unsubscribe(queue)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def send(self, msisdn: str, to: str | None, text: str, within: float) -> None:
        try:
            await self.smsc.inject_mo(msisdn, to or self.short_code, text, ack_timeout=within)
        except (TimeoutError, RuntimeError, ValueError) as exc:
            raise ReplayError(f"SMS not accepted: {exc or type(exc).__name__}") from exc

    async def ussd(self, msisdn: str, text: str, within: float) -> Screen:
        try:
            reply = await self.smsc.dial(msisdn, text, within)
        except (UssdError, UssdTimeout, ValueError) as exc:
            raise ReplayError(f"USSD: {exc}") from exc
        return Screen(reply.text, reply.end)

    async def next_sms(self, msisdn: str, within: float) -> str | None:
        return await self._inboxes.next(msisdn, within)


class HttpTarget:
    """A running simulator's HTTP API (``idea24 simulator`` or ``idea24 serve``'s)."""

    def __init__(self, http: aiohttp.ClientSession, simulator_url: str, short_code: str) -> None:
        self.http = http
        self.api = simulator_url.rstrip("/") + "/api/v1"
        self.short_code = short_code
        self._inboxes = _Inboxes([])

    @contextlib.asynccontextmanager
    async def listen(self, msisdns: list[str]) -> AsyncIterator[None]:
        self._inboxes = inboxes = _Inboxes(msisdns)
        connected = asyncio.Event()

        async def pump() -> None:
            async with self.http.get(f"{self.api}/events", timeout=_STREAM) as response:
                response.raise_for_status()
                connected.set()
                async for raw in response.content:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if line.startswith("data:"):
                        inboxes.add(json.loads(line[5:]))

        task = asyncio.create_task(pump())
        try:
            waiter = asyncio.create_task(connected.wait())
            await asyncio.wait([task, waiter], timeout=5, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():
                task.result()  # the connection error
            if not connected.is_set():
                raise TimeoutError("no event stream from the simulator within 5 s")
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task

    async def send(self, msisdn: str, to: str | None, text: str, within: float) -> None:
        body = {"from": msisdn, "to": to or self.short_code, "text": text, "wait": within}
        async with self.http.post(f"{self.api}/mo", json=body) as response:
            if response.status != 202:
                raise ReplayError(f"SMS not accepted: {await _error(response)}")

    async def ussd(self, msisdn: str, text: str, within: float) -> Screen:
        body = {"msisdn": msisdn, "text": text, "wait": within}
        async with self.http.post(f"{self.api}/ussd", json=body) as response:
            if response.status != 200:
                raise ReplayError(f"USSD: {await _error(response)}")
            data = await response.json()
        return Screen(str(data["text"]), bool(data["end"]))

    async def next_sms(self, msisdn: str, within: float) -> str | None:
        return await self._inboxes.next(msisdn, within)


async def _error(response: aiohttp.ClientResponse) -> str:
    try:
        data = await response.json()
    except (aiohttp.ContentTypeError, json.JSONDecodeError):
        return f"HTTP {response.status}"
    return str(data.get("error", f"HTTP {response.status}"))


async def replay_over_http(
    script: Script, simulator_url: str, short_code: str = "2424"
) -> ReplayResult:
    """``idea24 simulator --replay FILE``: the script against the simulator at ``simulator_url``."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        return await replay(script, HttpTarget(http, simulator_url, short_code))


async def run_replay(path: str, simulator_url: str, short_code: str = "2424") -> int:
    """The command: 0 when every expectation holds, 1 with the report's diff, 2 for a bad file."""
    try:
        script = load(path)
    except ScriptError as exc:
        print(f"idea24: {exc}", file=sys.stderr)
        return 2
    try:
        result = await replay_over_http(script, simulator_url, short_code)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"idea24: cannot reach the simulator at {simulator_url}: {exc}", file=sys.stderr)
        return 1
    print(format_report(result), flush=True)
    return 0 if result.ok else 1
