"""Idle USSD sessions end with our text before the network's timer: the timers (gateway.ussd_idle)
and the whole server over SMPP against the simulator, whose network timer runs longer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app import COMPONENTS, create_app
from gateway.settings import Settings, SmscProfile
from gateway.ussd_idle import UssdIdle
from simulator.controller import SimulatorController

EXPIRED = "Sesja wygasła. Wybierz *100# ponownie."


class Recorder:
    def __init__(self) -> None:
        self.open: set[str] = set()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.event = asyncio.Event()

    async def is_open(self, msisdn: str) -> bool:
        return msisdn in self.open

    async def expired_text(self, msisdn: str) -> str:
        return f"expired {msisdn}"

    async def send(self, msisdn: str, text: str, meta: Mapping[str, Any]) -> None:
        self.sent.append((msisdn, text, dict(meta)))
        self.event.set()


def idle_for(r: Recorder, timeout: float = 0.05, **options: Any) -> UssdIdle:
    return UssdIdle(timeout, r.is_open, r.expired_text, r.send, grace=0.0, **options)


async def test_an_unanswered_menu_ends_with_the_text_on_its_session() -> None:
    r = Recorder()
    idle = idle_for(r)
    idle.menu_sent("48600000001", {"channel": "ussd", "end": False, "its_session_info": "0a00"})
    await asyncio.wait_for(r.event.wait(), 5)
    await idle.drain()
    assert r.sent == [
        (
            "48600000001",
            "expired 48600000001",
            {"channel": "ussd", "end": True, "its_session_info": "0a00"},
        )
    ]
    assert idle.ended == 1 and len(idle) == 0


async def test_an_answer_or_a_final_screen_disarms_and_a_live_record_is_left_alone() -> None:
    r = Recorder()
    idle = idle_for(r, timeout=0.05)
    idle.menu_sent("48600000001", {"channel": "ussd", "end": False})
    idle.answered("48600000001")  # the subscriber answered here
    idle.menu_sent("48600000002", {"channel": "ussd", "end": False})
    r.open.add("48600000002")  # ...or through another process: the record is still there
    await asyncio.sleep(0.2)
    await idle.drain()
    assert r.sent == [] and idle.ended == 0
    await idle.aclose()


async def test_timers_are_bounded() -> None:
    r = Recorder()
    idle = idle_for(r, timeout=60, limit=2)
    for n in range(5):
        idle.menu_sent(f"4860000000{n}", {"channel": "ussd", "end": False})
    assert len(idle) == 2
    await idle.aclose()
    assert len(idle) == 0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[SimulatorController, Any]]:
    """The server on the demo data, its idle timeout 1 s; the network's timer is 30 s."""
    async with SimulatorController({"idea24": "idea24"}, ussd_timeout=30.0) as sim:
        host, port = sim.smpp_address
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'idle.db'}",
            smsc=(SmscProfile("idea24", "idea24", host, port, source_addr="2424"),),
            secret_key="idle-secret",
            ussd_timeout=1.0,
        )
        runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            c = runner.app[COMPONENTS]
            assert c.pool is not None
            for session in c.pool.sessions:
                await session.wait_bound(10)
            yield sim, c
        finally:
            await runner.cleanup()


async def test_the_server_ends_an_idle_session_with_text_over_smpp(
    served: tuple[SimulatorController, Any],
) -> None:
    sim, c = served
    menu = await sim.ussd("48600000001", "*100#")
    assert menu.text.startswith("Idea24\n1 Konto") and not menu.end
    ended = await sim.wait_messages("48600000001", 2, wait=10.0)
    last = ended[-1]
    assert (last.kind, last.text, last.end) == ("ussd", EXPIRED, True)
    assert last.data_coding == 8, "auto keeps the letters of a short screen (UCS-2)"
    assert c.router.idle.ended == 1
    # The next dial is a new session from the root, not an "expired" answer.
    assert (await sim.ussd("48600000001", "*100#")).text.startswith("Idea24\n1 Konto")


async def test_an_answered_menu_is_not_ended(served: tuple[SimulatorController, Any]) -> None:
    sim, c = served
    await sim.ussd("48600000001", "*100#")
    usage = await sim.ussd("48600000001", "2")  # answered in time: a fresh idle timeout
    assert usage.text.startswith("Pakiet do ") and not usage.end
    home = await sim.ussd("48600000001", "00")
    assert not home.end
    final = await sim.ussd("48600000001", "7")  # a final screen: nothing left to end
    assert final.end
    await asyncio.sleep(2.0)  # past the idle timeout of every menu shown: none fires
    assert c.router.idle.ended == 0
    assert [m.text for m in sim.messages("48600000001") if m.text == EXPIRED] == []
