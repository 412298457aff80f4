from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from simulator.controller import SimulatorController
from tests.simulator.peer import EsmeThread


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    async with SimulatorController(
        {"idea24": "idea24", "other": "secret"}, http_port=0, ussd_timeout=30.0
    ) as controller:
        yield controller


@pytest.fixture
async def esme(sim: SimulatorController) -> AsyncIterator[EsmeThread]:
    """A transceiver ESME answering every deliver_sm, served from its own thread."""
    thread = EsmeThread(sim.smpp_address)
    await asyncio.to_thread(thread.start)
    yield thread
    await asyncio.to_thread(thread.stop)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
