"""USSD walks with identical answers in a row while the SMSC drops the connection every second.

An answer repeated inside one session ("00", "00") is a new turn; a deliver_sm the SMSC offers
again after a drop is not. Each handset waits for every screen, as a phone does.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from simulator.controller import SimulatorController
from tests.faults.harness import Tally, gateway, seed_subscribers, subscribers
from tests.faults.test_fault_smsc import every

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


async def test_ussd_repeated_answers_with_drops(
    sim: SimulatorController, sqlite_url: str, fault_report: list[Tally]
) -> None:
    msisdns = subscribers(50)
    await seed_subscribers(sqlite_url, len(msisdns))
    seen: dict[str, list[str]] = {}

    async def walk(msisdn: str) -> None:
        seen[msisdn] = []
        for text, _ in WALK:
            reply = await sim.ussd(msisdn, text, wait=20.0)
            seen[msisdn].append(screen(reply.text))

    async with gateway(sim, sqlite_url) as gw:
        async with every(1.0, sim.drop_all) as drops:
            async with asyncio.timeout(90):
                await asyncio.gather(*(walk(m) for m in msisdns))
        processed = Counter(m for m, _ in gw.counter.turns.elements())
        duplicates = gw.snapshot()["inbound"]["duplicates"]
    expected = [name for _, name in WALK]
    wrong = [m for m in msisdns if seen[m] != expected]
    at_handset = Counter(
        m for m in msisdns for x in sim.messages(m) if x.direction == "mt" and x.kind == "ussd"
    )
    tally = Tally("ussd walks, repeated answers, drops every 1s", processed_known=True)
    tally.turns_sent = tally.replies_expected = len(msisdns) * len(WALK)
    tally.processed_once = sum(min(processed[m], len(WALK)) for m in msisdns)
    tally.processed_twice = sum(max(0, processed[m] - len(WALK)) for m in msisdns)
    tally.not_processed = sum(max(0, len(WALK) - processed[m]) for m in msisdns)
    tally.delivered_once = sum(min(at_handset[m], len(WALK)) for m in msisdns)
    tally.delivered_repeated = sum(max(0, at_handset[m] - len(WALK)) for m in msisdns)
    tally.missing = sum(max(0, len(WALK) - at_handset[m]) for m in msisdns)
    tally.order_broken = wrong
    tally.extra.update(drops=drops[0], mo_duplicates_dropped=duplicates)
    fault_report.append(tally)
    assert drops[0] >= 1, tally.line()
    assert not wrong, (tally.line(), {m: seen[m] for m in wrong[:3]})
    assert tally.processed_once == tally.turns_sent and tally.processed_twice == 0, tally.line()
    assert tally.delivered_once == tally.turns_sent and tally.missing == 0, tally.line()
