from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.controller import SimulatorController


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    async with SimulatorController(
        {"idea24": "idea24", "other": "secret"}, http_port=0, ussd_timeout=30.0
    ) as controller:
        yield controller
