"""The seeded data keeps up with the calendar: synthetic accounts get each new period's invoice
on the first read of a new day (demo accounts: tests/dialogs/test_calendar_matrix.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from backend.db import open_backend
from backend.demo_calendar import DemoCalendar, roll_forward
from backend.manage import seed
from backend.seed import SYNTHETIC_BASE

SECRET = "test-secret-key"
WARSAW = ZoneInfo("Europe/Warsaw")
SEEDED = datetime(2027, 1, 15, 12, tzinfo=WARSAW)
ASKED = SEEDED + timedelta(days=40)  # 24.02.2027


def last_closed_period(day: date, billing_day: int) -> date:
    """The start of the period before the one holding ``day``."""
    index = day.year * 12 + day.month - 1 - (1 if day.day >= billing_day else 2)
    return date(index // 12, index % 12 + 1, billing_day)


def test_synthetic_invoices_roll_forward_and_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}"
    with time_machine.travel(SEEDED, tick=False):
        asyncio.run(seed(url, SECRET, demo=True, subscribers=56))  # every billing day twice

    async def last_invoices() -> dict[int, date]:
        async with open_backend(url, SECRET, on_new_day=DemoCalendar()) as backend:
            starts = {}
            for i in range(28):
                invoice = await backend.last_invoice(str(SYNTHETIC_BASE + i))
                starts[1 + i % 28] = invoice.period_start
                assert len(await backend.invoices(str(SYNTHETIC_BASE + i), 12)) == 12
            return starts

    for when in (ASKED, SEEDED):  # forward 40 days, then the clock goes back
        with time_machine.travel(when, tick=False):
            today = when.astimezone(WARSAW).date()
            got = asyncio.run(last_invoices())
        assert got == {d: last_closed_period(today, d) for d in range(1, 29)}, when


@pytest.mark.postgres
async def test_the_roll_forward_runs_on_postgresql(pg_seeded: str) -> None:
    """The same statements on PostgreSQL; a second run on the same day adds nothing."""
    async with open_backend(pg_seeded, SECRET) as backend:
        today = datetime.now(UTC).astimezone(WARSAW).date()
        async with backend.sessionmaker.begin() as session:
            await roll_forward(session, today)
        async with backend.sessionmaker.begin() as session:
            assert await roll_forward(session, today) == 0


def test_two_servers_roll_the_same_new_day(tmp_path: Path) -> None:
    """Two processes' backends on one database meet the same month end: both answer, each
    invoice exists once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}"
    with time_machine.travel(SEEDED, tick=False):
        asyncio.run(seed(url, SECRET, demo=True, subscribers=56))

    async def both() -> list[date]:
        async with (
            open_backend(url, SECRET, on_new_day=DemoCalendar()) as a,
            open_backend(url, SECRET, on_new_day=DemoCalendar()) as b,
        ):
            got = await asyncio.gather(
                *(x.last_invoice(n) for x in (a, b) for n in ("48600000001", "48700000000"))
            )
            invoices = await a.invoices("48600000001", 24)
            assert len({i.number for i in invoices}) == len(invoices) == 13  # 12 + January
            return [i.period_start for i in got]

    with time_machine.travel(ASKED, tick=False):
        starts = asyncio.run(both())
    today = ASKED.date()
    assert starts == [last_closed_period(today, 1)] * 4
