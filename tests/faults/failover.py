"""A paced load across a failover, counted: answered, lost, doubled, seconds without service.

Each handset (a synthetic subscriber) runs the cycle PAKIET, WLACZ NOCE, TAK <code>, PAKIET,
WYLACZ NOCE, TAK <code>: it sends a turn once a shared pacer lets it (``rate`` turns a second
over all handsets) and the next one only once the reply came, as a person does. A reply that
does not come within ``patience`` seconds counts as lost and the handset goes on. At the end
every handset's replies are compared with what it sent, tag by tag (tests/faults/harness.tag):
a missing tag is a lost turn, a tag seen more often than sent a doubled reply, and activations
are counted in the database (a service switched twice shows as an extra charge). Seconds without
service: the longest gap between two replies reaching any handset after the fault began.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from simulator.controller import SimulatorController
from simulator.smsc import MoRefused
from tests.faults.harness import SERVICE, SHORT_CODE, code_of, tag


def reply_tag(text: str) -> str:
    return "P" if text.startswith("Pakiet do") else tag(text)


def cycle(msisdn: str) -> list[tuple[str, str]]:
    code = code_of(msisdn)
    return [
        ("PAKIET", "P"),
        (f"WLACZ {SERVICE}", "+?"),
        (f"TAK {code}", "+"),
        ("PAKIET", "P"),
        (f"WYLACZ {SERVICE}", "-?"),
        (f"TAK {code}", "-"),
    ]


@dataclass
class FailoverCount:
    name: str
    sent: int = 0
    answered: int = 0
    lost: int = 0
    doubled: int = 0
    unexpected: list[str] = field(default_factory=list)
    activations: int = 0
    charges: int = 0
    outage_s: float = 0.0
    fault_s: float = 0.0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"FAILOVER {self.name}: {self.sent} turns in {self.seconds:.1f} s"
            f" ({self.sent / max(self.seconds, 1e-9):.0f}/s) | answered={self.answered}"
            f" lost={self.lost} doubled={self.doubled} unexpected={len(self.unexpected)}"
            f" | activations sent={self.activations} charged={self.charges}"
            f" | fault took {self.fault_s:.1f} s, longest gap without a reply {self.outage_s:.1f} s"
        )


class FailoverLoad:
    def __init__(
        self,
        sim: SimulatorController,
        msisdns: list[str],
        rate: float = 200.0,
        patience: float = 30.0,
    ) -> None:
        self.sim = sim
        self.msisdns = msisdns
        self.rate = rate
        self.patience = patience
        self.expected: dict[str, list[str]] = defaultdict(list)
        self.replies: Counter[str] = Counter()
        self._arrived: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._next = 0.0
        self._stop = asyncio.Event()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next = max(self._next, now) + 1.0 / self.rate
        await asyncio.sleep(self._next - now)

    async def _listen(self) -> None:
        queue = self.sim.smsc.store.subscribe(receipts=False, backlog=None)
        try:
            while True:
                message = await queue.get()
                if message is None:  # cut off for lagging: catch up from the store
                    queue = self.sim.smsc.store.subscribe(receipts=False)
                    for m in self.msisdns:
                        self._arrived[m].set()
                    continue
                if message.direction == "mt":
                    self._arrived[message.msisdn].set()
        finally:
            self.sim.smsc.store.unsubscribe(queue)

    def _mt(self, msisdn: str) -> int:
        return sum(1 for m in self.sim.messages(msisdn) if m.direction == "mt")

    async def _handset(self, msisdn: str) -> None:
        plan = cycle(msisdn)
        step = 0
        while not self._stop.is_set():
            text, expect = plan[step % len(plan)]
            await self._pace()
            if self._stop.is_set():
                return
            before = self._mt(msisdn)
            while True:
                try:
                    await self.sim.inject_mo(msisdn, SHORT_CODE, text, ack_timeout=self.patience)
                    break
                except (MoRefused, TimeoutError):
                    await asyncio.sleep(0.2)  # an SMSC keeps offering it
            self.expected[msisdn].append(expect)
            deadline = time.monotonic() + self.patience
            while self._mt(msisdn) <= before and time.monotonic() < deadline:
                event = self._arrived[msisdn]
                event.clear()
                if self._mt(msisdn) > before:
                    break
                try:
                    async with asyncio.timeout(deadline - time.monotonic()):
                        await event.wait()
                except TimeoutError:
                    break
            step += 1

    async def run(
        self,
        count: FailoverCount,
        seconds: float,
        fault_after: float,
        fault: Callable[[], Awaitable[None]],
        settle: float = 30.0,
    ) -> FailoverCount:
        """Drive for ``seconds``, run ``fault`` ``fault_after`` seconds in, then count."""
        listener = asyncio.create_task(self._listen())
        handsets = [asyncio.create_task(self._handset(m)) for m in self.msisdns]
        began = time.time()
        try:
            await asyncio.sleep(fault_after)
            fault_began = time.time()
            await fault()
            count.fault_s = time.time() - fault_began
            await asyncio.sleep(max(0.0, seconds - (time.time() - began)))
            self._stop.set()
            async with asyncio.timeout(settle + self.patience):
                await asyncio.gather(*handsets)
            count.seconds = time.time() - began
            await self._quiet(settle)
        finally:
            self._stop.set()
            for task in [*handsets, listener]:
                task.cancel()
            await asyncio.gather(*handsets, listener, return_exceptions=True)
        self._count(count, fault_began)
        return count

    async def _quiet(self, within: float) -> None:
        """Until every handset has as many replies as turns sent, and 1 s more for repeats."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(self._mt(m) >= len(self.expected[m]) for m in self.msisdns):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)

    def _count(self, count: FailoverCount, fault_began: float) -> None:
        arrivals = []
        for msisdn in self.msisdns:
            mt = [m for m in self.sim.messages(msisdn) if m.direction == "mt" and m.kind == "sms"]
            arrivals += [m.at for m in mt]
            got = Counter(reply_tag(m.text) for m in mt)
            wanted = Counter(self.expected[msisdn])
            count.sent += len(self.expected[msisdn])
            count.activations += wanted["+"]
            for t, n in wanted.items():
                count.answered += min(n, got[t])
                count.lost += max(0, n - got[t])
                count.doubled += max(0, got[t] - n)
            count.unexpected += [f"{msisdn}:{t}" for t in got if t not in wanted]
        after = sorted(a for a in arrivals if a >= fault_began)
        gaps = [b - a for a, b in zip([fault_began, *after], after, strict=False)]
        count.outage_s = max(gaps, default=0.0)
