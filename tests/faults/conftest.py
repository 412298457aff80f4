"""Fixtures of the fault tests (``tests/faults/``): the simulator, a database, the printed counts.

Every test in this directory gets the ``faults`` marker, so ``pytest -m faults`` or
``pytest tests/faults`` runs them; they also run in the normal suite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from simulator.controller import SimulatorController
from tests.faults.harness import Tally


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection, fuzzing and security tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    """The SMSC: MO unanswered for 5 s is taken back and offered again (30 s by default)."""
    async with SimulatorController({"idea24": "idea24"}, response_timeout=5.0) as controller:
        yield controller


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'faults.db'}"


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Iterator[list[Tally]]:
    """Tests append their :class:`Tally`; its counts are printed at teardown (``-s`` shows them)
    and kept as a user property of the test report."""
    tallies: list[Tally] = []
    yield tallies
    for tally in tallies:
        line = tally.line()
        print("\n" + line)
        request.node.user_properties.append(("fault", line))
