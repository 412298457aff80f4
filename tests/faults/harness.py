"""Fault-test harness: a scripted stream of MO turns, the gateway under test, exact counting.

Every turn is an SMS whose reply can be told apart from every other reply: an unknown word
``Q<sub>T<k>`` is answered "Nie znamy komendy „Q<sub>T<k>”…", and the money-bearing cycle
``WLACZ NOCE`` / ``TAK <code>`` / ``WYLACZ NOCE`` / ``TAK <code>`` answers with a quote, "włączona",
a quote, "wyłączona". Each reply at the handset is reduced to a *tag* (the word, or ``+?``, ``+``,
``-?``, ``-``); a subscriber's expected tags are known up front, so a missing, doubled or
reordered reply shows as a difference. Activations are counted in the database (``charges`` and
``audit_log``), so a money change applied twice shows too.

The handsets are synthetic subscribers 48700000000+i (code = last 6 digits, see
``backend/seed.py``). Each one sends its turns one after another, the next only once the SMSC
has the previous one acknowledged by the gateway (as one handset's SMS leave in order); all
subscribers send at once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from backend.db import create_engine, make_sessionmaker
from backend.manage import seed
from backend.models import AuditEntry, Charge
from backend.seed import SYNTHETIC_BASE
from fsm.runtime import Inbound, Reply
from gateway.app import create_app
from gateway.components import COMPONENTS, Components
from gateway.esme.session import SmppSession
from gateway.settings import Settings, SmscProfile
from gateway.sms.text import transliterate
from simulator.controller import SimulatorController
from simulator.smsc import MoRefused
from tests.conftest import free_port

SHORT_CODE = "2424"
SECRET = "faults-secret"
SERVICE = "NOCE"  # activation fee 10 zł: one charge row per activation
#: Fast reconnects: the faults come every second or two, the default back-off would idle the test.
FAST_LINK: Mapping[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.5, "stable_after": 1.0}


async def until(condition: Callable[[], object], within: float = 30.0) -> None:
    """Wait (bounded) until ``condition()`` is true; for states no event announces."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {within} s"
        await asyncio.sleep(0.02)


_WORD = re.compile(r"\"(Q\d+T\d+)\"")


def subscribers(count: int, first: int = 0) -> list[str]:
    return [str(SYNTHETIC_BASE + first + i) for i in range(count)]


def code_of(msisdn: str) -> str:
    return msisdn[-6:]


def tag(text: str) -> str:
    """What one reply SMS says, reduced to what the script expects (the text policy may have
    transliterated it, so it is read transliterated)."""
    plain = transliterate(text)
    found = _WORD.search(plain)
    if found:
        return found.group(1)
    if plain.startswith("Wlaczenie uslugi"):
        return "+?"
    if "wlaczona od" in plain:
        return "+"
    if plain.startswith("Wylaczenie uslugi"):
        return "-?"
    if "wylaczona od" in plain:
        return "-"
    return "!" + text[:60]


@dataclass(frozen=True)
class Turn:
    text: str
    expect: str  # the tag of its reply


def script(msisdn: str, index: int, turns: int, cycles: int = 1) -> list[Turn]:
    """``turns`` turns for one subscriber: unknown words with ``cycles`` activate/deactivate
    cycles (4 turns each) spread through them."""
    code = code_of(msisdn)
    cycle = [
        Turn(f"WLACZ {SERVICE}", "+?"),
        Turn(f"TAK {code}", "+"),
        Turn(f"WYLACZ {SERVICE}", "-?"),
        Turn(f"TAK {code}", "-"),
    ]
    words = max(0, turns - 4 * cycles)
    out: list[Turn] = []
    per_gap = words // (cycles + 1) if cycles else words
    k = 0
    for c in range(cycles + 1):
        n = per_gap if c < cycles else words - per_gap * cycles
        for _ in range(n):
            word = f"Q{index}T{k}"
            out.append(Turn(word, word))
            k += 1
        if c < cycles:
            out.extend(cycle)
    return out


@dataclass
class Workload:
    """The whole stream: subscribers and each one's turns."""

    msisdns: list[str]
    scripts: dict[str, list[Turn]]
    cycles: int

    @classmethod
    def build(cls, subscribers_: int, turns_each: int, cycles: int = 1, first: int = 0) -> Workload:
        msisdns = subscribers(subscribers_, first)
        scripts = {m: script(m, first + i, turns_each, cycles) for i, m in enumerate(msisdns)}
        return cls(msisdns, scripts, cycles)

    @property
    def turns(self) -> int:
        return sum(len(s) for s in self.scripts.values())

    @property
    def activations(self) -> int:
        return self.cycles * len(self.msisdns)


@dataclass
class Driver:
    """Sends the workload through the simulator, one handset after another turn by turn.

    A turn the gateway refused (or that the simulator gave up on after its five quick tries)
    is offered again, as a real SMSC keeps retrying for hours; ``resubmits`` counts those.
    ``pause`` (an :class:`asyncio.Event` cleared by a test) holds new turns while set is False.
    """

    sim: SimulatorController
    workload: Workload
    ack_timeout: float = 30.0
    resubmits: int = 0
    sent: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, within: float = 120.0) -> None:
        async with asyncio.timeout(within):
            await asyncio.gather(*(self._one(m) for m in self.workload.msisdns))

    async def _one(self, msisdn: str) -> None:
        for turn in self.workload.scripts[msisdn]:
            while True:
                try:
                    await self.sim.inject_mo(
                        msisdn, SHORT_CODE, turn.text, ack_timeout=self.ack_timeout
                    )
                    break
                except (MoRefused, TimeoutError):
                    self.resubmits += 1
                    await asyncio.sleep(0.2)
            self.sent += 1
            self.progress.set()

    async def until_sent(self, count: int) -> None:
        """Wait until at least ``count`` turns were acknowledged (to time a fault)."""
        while self.sent < count:
            self.progress.clear()
            await self.progress.wait()


def replies_at_handsets(sim: SimulatorController, msisdns: Iterable[str]) -> dict[str, list[str]]:
    """Each handset's reply tags in arrival order (SMS MT, reassembled by the simulator)."""
    return {
        m: [tag(x.text) for x in sim.messages(m) if x.direction == "mt" and x.kind == "sms"]
        for m in msisdns
    }


async def wait_replies(
    sim: SimulatorController,
    workload: Workload,
    within: float = 60.0,
    settled: Callable[[], Awaitable[bool]] | None = None,
) -> dict[str, list[str]]:
    """Wait until every handset has every reply it expects (and ``settled`` says nothing more
    is on its way); returns what arrived. Replies are counted per expected tag, not in total: a
    repeated reply (allowed after a crash) must not stand in for one still on its way."""
    deadline = time.monotonic() + within
    wanted = {m: Counter(t.expect for t in s) for m, s in workload.scripts.items()}
    while True:
        got = replies_at_handsets(sim, workload.msisdns)
        complete = all(not (w - Counter(got[m])) for m, w in wanted.items())
        if complete and (settled is None or await settled()):
            return got
        if time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


class TurnCounter:
    """Wraps the runtime the router calls: counts every turn the dialogs processed."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self.turns: Counter[tuple[str, str]] = Counter()
        self.replies = 0

    async def turn(self, inbound: Inbound, deliver: Any = None) -> list[Reply]:
        replies: list[Reply] = await self._runtime.turn(inbound, deliver)
        self.turns[(inbound.msisdn, inbound.text)] += 1
        self.replies += len(replies)
        return replies


async def money_counts(database_url: str, msisdns: Sequence[str]) -> tuple[int, int]:
    """(activation charges, activate audit rows) of these subscribers for ``SERVICE``."""
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            charges = await session.scalar(
                select(func.count())
                .select_from(Charge)
                .where(Charge.msisdn.in_(msisdns), Charge.reference == SERVICE)
            )
            audits = await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.msisdn.in_(msisdns), AuditEntry.action == "activate")
            )
    finally:
        await engine.dispose()
    return int(charges or 0), int(audits or 0)


@dataclass
class Tally:
    """What a fault test counted; ``line()`` is the one summary line it prints."""

    name: str
    processed_known: bool = False  # False: a subprocess gateway, turns seen only at the handset
    turns_sent: int = 0
    processed_once: int = 0
    processed_twice: int = 0
    not_processed: int = 0
    replies_expected: int = 0
    delivered_once: int = 0
    delivered_repeated: int = 0
    missing: int = 0
    unexpected: list[str] = field(default_factory=list)
    order_broken: list[str] = field(default_factory=list)
    activations_expected: int = 0
    charges: int = 0
    audits: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        processed = (
            f"processed once={self.processed_once} twice+={self.processed_twice}"
            f" never={self.not_processed}"
            if self.processed_known
            else "processed: counted at the handsets"
        )
        return (
            f"FAULT {self.name}: MO sent={self.turns_sent} {processed} | replies"
            f" expected={self.replies_expected} delivered once={self.delivered_once}"
            f" repeated={self.delivered_repeated} missing={self.missing}"
            f" unexpected={len(self.unexpected)} | money activations"
            f" expected={self.activations_expected} charged={self.charges}"
            f" audited={self.audits} | order broken for {len(self.order_broken)} subscribers"
            + (f" | {extra}" if extra else "")
        )


def compare(
    tally: Tally,
    workload: Workload,
    got: Mapping[str, list[str]],
    processed: Counter[tuple[str, str]] | None = None,
) -> Tally:
    """Fill ``tally`` from what the handsets got (and what the dialogs processed, if known)."""
    tally.turns_sent = workload.turns
    tally.replies_expected = workload.turns
    tally.activations_expected = workload.activations
    for msisdn, turns in workload.scripts.items():
        expected = [t.expect for t in turns]
        tags = got.get(msisdn, [])
        wanted = Counter(expected)
        seen = Counter(tags)
        for t, n in wanted.items():
            have = seen.get(t, 0)
            # "+?" etc. repeat once per cycle: compare counts per tag.
            tally.delivered_once += min(have, n)
            tally.missing += max(0, n - have)
            tally.delivered_repeated += max(0, have - n)
        tally.unexpected += [f"{msisdn}:{t}" for t in tags if t not in wanted]
        # Order: with consecutive repeats collapsed, the tags must be exactly the script.
        # (The script never has the same tag twice in a row, so collapsing is exact.)
        collapsed = [t for i, t in enumerate(tags) if i == 0 or tags[i - 1] != t]
        if collapsed != expected:
            tally.order_broken.append(msisdn)
    if processed is not None:
        tally.processed_known = True
        for msisdn, turns in workload.scripts.items():
            texts = Counter(t.text for t in turns)
            for text, n in texts.items():
                count = processed.get((msisdn, text), 0)
                tally.processed_once += min(count, n)
                tally.processed_twice += max(0, count - n)
                tally.not_processed += max(0, n - count)
    return tally


# -- the gateway under test, in this process ---------------------------------------------------


def sim_profile(sim: SimulatorController, **options: Any) -> SmscProfile:
    host, port = sim.smpp_address
    values: dict[str, Any] = {"source_addr": SHORT_CODE, "window": 32, **options}
    return SmscProfile("idea24", "idea24", host, port, **values)


async def seed_subscribers(database_url: str, count: int) -> None:
    await seed(database_url, SECRET, demo=False, subscribers=count)


@dataclass
class Gateway:
    """A running :func:`gateway.app.create_app` (no HTTP site) and its turn counter."""

    components: Components
    counter: TurnCounter

    async def settled(self) -> bool:
        """Nothing left to send: the outbox is empty and no sender holds an item."""
        c = self.components
        assert c.outbox is not None and c.pool is not None
        return await c.outbox.depth() == 0 and not any(s.busy for s in c.pool.senders)

    def snapshot(self) -> dict[str, Any]:
        assert self.components.pool is not None
        return self.components.pool.snapshot()

    @property
    def session(self) -> SmppSession:
        assert self.components.pool is not None
        return self.components.pool.sessions[0]

    def link_stat(self, name: str) -> int:
        """One :class:`gateway.esme.link.LinkStats` counter summed over every link of every bind."""
        assert self.components.pool is not None
        links = [link for s in self.components.pool.sessions for link in s.links]
        return sum(int(getattr(link.stats, name)) for link in links)


@asynccontextmanager
async def served_app(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[str, web.Application]]:
    """The whole server over HTTP, as ``idea24 serve`` with no SMSC runs it (the bundled
    simulator, SQLite in ``tmp_path``), on free loopback ports: its base URL and app."""
    port = free_port()
    app = create_app(
        Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}",
            http_port=port,
            simulator_smpp_port=free_port(),
            simulator_http_port=free_port(),
            **settings,
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


@asynccontextmanager
async def gateway(
    sim: SimulatorController,
    database_url: str,
    *,
    redis_url: str | None = None,
    profile: Mapping[str, Any] | None = None,
    session_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Gateway]:
    """The whole server bound to ``sim`` (its SMPP side only), started as ``idea24 serve`` does."""
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        smsc=(sim_profile(sim, **dict(profile or {})),),
        secret_key=SECRET,
        short_code=SHORT_CODE,
        seed_demo=False,
        extra={"session_options": dict(FAST_LINK, **dict(session_options or {}))},
    )
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        c = app[COMPONENTS]
        assert c.router is not None and c.pool is not None
        counter = TurnCounter(c.router.runtime)
        c.router.runtime = counter
        for session in c.pool.sessions:
            await session.wait_bound(10)
        yield Gateway(c, counter)
    finally:
        await runner.cleanup()
