"""USSD walks with identical answers in a row while the SMSC drops the connection every 40 turns.

An answer repeated inside one session ("00", "00") is a new turn; a deliver_sm the SMSC offers
again after a drop is not. Each handset waits for every screen, as a phone does.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from simulator.controller import SimulatorController
from tests.faults.harness import Tally, gateway, seed_subscribers, subscribers

#: (what the handset sends, the screen it must get back)
WALK = [
    ("*100#", "root"),
    ("2", "pakiet"),
    ("00", "root"),
    ("00", "root"),
    ("2", "pakiet"),
    ("0", "root"),
    ("9", "bok"),
    ("0", "root"),
    ("0", "pick"),
    ("2", "pakiet"),
]


def screen(text: str) -> str:
    for prefix, name in (
        ("Idea24", "root"),
        ("Pakiet", "pakiet"),
        ("Wybierz numer", "pick"),
        ("Kontakt z BOK", "bok"),
    ):
        if text.startswith(prefix):
            return name
    return "?" + text[:40]


async def walks(
    sim: SimulatorController, sqlite_url: str, name: str, drop_every: int | None
) -> tuple[Tally, dict[str, list[str]]]:
    """50 handsets walk ``WALK`` at once, the link cut after every ``drop_every`` screens.

    Drops follow progress, not the clock: a fast run must meet them as often as a slow one.
    """
    msisdns = subscribers(50)
    await seed_subscribers(sqlite_url, len(msisdns))
    seen: dict[str, list[str]] = {m: [] for m in msisdns}
    drops = [0]
    screens = [0]

    async def walk(msisdn: str) -> None:
        for text, _ in WALK:
            reply = await sim.ussd(msisdn, text, wait=10.0)
            seen[msisdn].append(screen(reply.text))
            screens[0] += 1
            if drop_every and screens[0] % drop_every == 0:
                sim.drop_all()
                drops[0] += 1

    async with gateway(sim, sqlite_url) as gw:
        async with asyncio.timeout(90):
            await asyncio.gather(*(walk(m) for m in msisdns))
        processed = Counter(m for m, _ in gw.counter.turns.elements())
        duplicates = gw.snapshot()["inbound"]["duplicates"]
    expected = [name for _, name in WALK]
    at_handset = Counter(
        m for m in msisdns for x in sim.messages(m) if x.direction == "mt" and x.kind == "ussd"
    )
    n = len(WALK)
    tally = Tally(name, processed_known=True)
    tally.turns_sent = tally.replies_expected = len(msisdns) * n
    tally.processed_once = sum(min(processed[m], n) for m in msisdns)
    tally.processed_twice = sum(max(0, processed[m] - n) for m in msisdns)
    tally.not_processed = sum(max(0, n - processed[m]) for m in msisdns)
    tally.delivered_once = sum(min(at_handset[m], n) for m in msisdns)
    tally.delivered_repeated = sum(max(0, at_handset[m] - n) for m in msisdns)
    tally.missing = sum(max(0, n - at_handset[m]) for m in msisdns)
    tally.order_broken = [m for m in msisdns if seen[m] != expected]
    tally.extra.update(drops=drops[0], mo_duplicates_dropped=duplicates)
    return tally, seen


def assert_walks(tally: Tally, seen: dict[str, list[str]]) -> None:
    wrong = tally.order_broken
    assert not wrong, (tally.line(), {m: seen[m] for m in wrong[:3]})
    assert tally.processed_once == tally.turns_sent and tally.processed_twice == 0, tally.line()
    assert tally.delivered_once == tally.turns_sent and tally.missing == 0, tally.line()


async def test_ussd_repeated_answers(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    """``00``, ``00`` and ``0``, ``0`` in a row inside one session are two turns each."""
    tally, seen = await walks(sim, sqlite_url, "ussd walks, repeated answers", None)
    fault_report.append(tally)
    assert_walks(tally, seen)


async def test_ussd_repeated_answers_with_drops(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    tally, seen = await walks(sim, sqlite_url, "ussd walks, repeated answers, drops", 40)
    fault_report.append(tally)
    assert int(tally.extra["drops"]) >= 1, tally.line()
    assert_walks(tally, seen)
