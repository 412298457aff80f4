"""The whole server bound to the simulator over TLS: SMS and USSD turns, delivery receipts, and
a reconnect after the simulator drops the link, exactly as over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.components import COMPONENTS, Components
from gateway.settings import Settings, SmscProfile
from simulator.controller import SimulatorController
from tests.tls_certs import Certs

A = "48600000001"
FAST_LINK = {"backoff_base": 0.05, "backoff_cap": 0.5, "stable_after": 1.0}


@pytest.fixture
async def sim(certs: Certs) -> AsyncIterator[SimulatorController]:
    context = certs.listener(mutual=True)
    async with SimulatorController(tls=context) as controller:
        yield controller


@pytest.fixture
async def server(
    sim: SimulatorController, certs: Certs, tmp_path: Path
) -> AsyncIterator[Components]:
    assert sim.smpps_address is not None
    host, port = sim.smpps_address
    url = (
        f"smpps://idea24:idea24@{host}:{port}?ca={certs.ca}&cert={certs.client_cert}"
        f"&key={certs.client_key}&source_addr=2424"
    )
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}",
        smsc=(SmscProfile.from_url(url),),
        secret_key="tls-secret",
        extra={"session_options": FAST_LINK},
    )
    runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        c = runner.app[COMPONENTS]
        assert c.pool is not None
        assert await c.pool.sessions[0].wait_bound(10)
        yield c
    finally:
        await runner.cleanup()


async def sms_turn(sim: SimulatorController, text: str) -> str:
    before = len(sim.messages(A))
    mt = len([m for m in sim.messages(A) if m.direction == "mt"])
    await sim.inject_mo(A, "2424", text)
    replies = await sim.wait_messages(A, mt + 1, wait=10)
    assert len(sim.messages(A)) > before
    return replies[-1].text


async def delivered(c: Components, count: int, within: float = 5.0) -> None:
    assert c.pool is not None
    async with asyncio.timeout(within):
        while c.pool.snapshot()["delivery"]["delivered"] < count:  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.01)


async def test_turns_receipts_and_reconnect_over_mutual_tls(
    sim: SimulatorController, server: Components
) -> None:
    [session] = sim.smsc.sessions
    assert session.transport is not None
    assert session.transport.get_extra_info("ssl_object") is not None  # not clear text

    reply = await sms_turn(sim, "PAKIET")
    assert "Pakiet" in reply, reply
    screen = await sim.ussd(A, "*100#")
    assert not screen.end and "2" in screen.text and len(screen.text) <= 182
    screen = await sim.ussd(A, "2")
    assert "120" in screen.text, screen.text
    await delivered(server, 1)  # the PAKIET reply's receipt came back over TLS and matched

    assert server.pool is not None
    bind = server.pool.sessions[0]
    assert sim.drop_all() == 1
    async with asyncio.timeout(10):
        while sum(link.stats.connects for link in bind.links) < 2 or not bind.bound:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    [again] = sim.smsc.sessions
    assert again is not session and again.transport is not None
    assert again.transport.get_extra_info("ssl_object") is not None

    reply = await sms_turn(sim, "INFO")
    assert "600000001" in reply.replace(" ", ""), reply
    await delivered(server, 2)
