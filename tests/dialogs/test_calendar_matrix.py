"""The core flows on the awkward days of the calendar, in-process on SQLite.

Each case seeds a database at one instant and asks at another (``time-machine`` moves the clock
both times): the last day of a month, New Year's Eve in Warsaw (still the 31st in UTC), 29 Feb
2028, both Europe/Warsaw DST switches (2027-03-28 and 2027-10-31 around 02:00–03:00 local),
and "seeded 40 days ago, asked today". The server keeps running between the two instants (one
Backend, with the demo calendar as in ``gateway/app.py``), so a case crossing a month end shows
what a server running across it shows. Expected values are computed here from the calendar
(``calendar``, ``zoneinfo``), never written as dates.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from backend.api import Backend
from backend.db import open_backend
from backend.demo_calendar import DemoCalendar
from backend.manage import seed
from dialogs import build_dialogs
from fsm.runtime import Runtime
from fsm.store import MemoryStore
from tests.dialogs.conftest import Phone

SECRET = "test-secret-key"
WARSAW = ZoneInfo("Europe/Warsaw")
JAN, ANNA = "48600000001", "48600000002"  # billing day 1 / billing day 10 (seed.DEMO_ACCOUNTS)
USSD_IDLE = 120  # DESIGN.md: idle sessions end after 120 s


def warsaw(y: int, m: int, d: int, hh: int = 0, mm: int = 0, fold: int = 0) -> datetime:
    """The UTC instant of a Warsaw wall-clock time (``fold=1``: the second 02:30 in October)."""
    return datetime(y, m, d, hh, mm, tzinfo=WARSAW, fold=fold).astimezone(UTC)


_NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Case:
    name: str
    seeded: datetime
    asked: datetime


CASES = [
    Case("last_day_of_month", warsaw(2027, 4, 29, 12), warsaw(2027, 4, 30, 22, 30)),
    Case("new_year_in_warsaw", warsaw(2026, 12, 31, 23, 30), warsaw(2027, 1, 1, 0, 30)),
    Case("leap_day", warsaw(2028, 2, 28, 18), warsaw(2028, 2, 29, 12)),
    # 02:00 CET jumps to 03:00 CEST: 01:30 and, one hour later, 03:30.
    Case("dst_spring", warsaw(2027, 3, 28, 1, 30), warsaw(2027, 3, 28, 1, 30) + timedelta(hours=1)),
    # 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, asked at the second.
    Case("dst_autumn", warsaw(2027, 10, 31, 2, 30), warsaw(2027, 10, 31, 2, 30, fold=1)),
    Case("seeded_40_days_ago", _NOW - timedelta(days=40), _NOW),
]


# -- the calendar, independently of backend.periods -------------------------------------------


def local_day(instant: datetime) -> date:
    return instant.astimezone(WARSAW).date()


def month_shift(day: date, months: int, on: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, on)


def period(day: date, billing_day: int) -> tuple[date, date]:
    """(start, inclusive end) of the billing period holding ``day``."""
    start = month_shift(day, 0 if day.day >= billing_day else -1, billing_day)
    return start, month_shift(start, 1, billing_day) - timedelta(days=1)


def dmy(day: date) -> str:
    return day.strftime("%d.%m.%Y")


# -- the world: a database seeded at ``case.seeded``, a server that keeps running ----------------


_TEMPLATES: dict[str, Path] = {}


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def database(case: Case, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> str:
    """A copy of the database seeded (under a travelled clock) at ``case.seeded``."""
    if case.name not in _TEMPLATES:
        path = tmp_path_factory.mktemp(case.name) / "template.db"
        with time_machine.travel(case.seeded, tick=False):
            asyncio.run(seed(f"sqlite+aiosqlite:///{path}", SECRET, demo=True))
        _TEMPLATES[case.name] = path
    target = tmp_path / "idea24.db"
    shutil.copyfile(_TEMPLATES[case.name], target)
    return f"sqlite+aiosqlite:///{target}"


@dataclass
class World:
    case: Case
    travel: time_machine.Traveller
    backend: Backend
    runtime: Runtime

    def phone(self, msisdn: str = JAN) -> Phone:
        return Phone(self.runtime, msisdn)

    def to(self, instant: datetime) -> None:
        self.travel.move_to(instant)


def _wall_seconds() -> float:
    """The dialog store's timer, moved by time-machine with the wall clock."""
    return datetime.now(UTC).timestamp()


@pytest.fixture
async def world(case: Case, database: str) -> AsyncIterator[World]:
    with time_machine.travel(case.seeded, tick=False) as travel:
        async with open_backend(database, SECRET, on_new_day=DemoCalendar()) as backend:
            runtime = Runtime(MemoryStore(clock=_wall_seconds), build_dialogs(), backend)
            w = World(case, travel, backend, runtime)
            # The server answers once on the day it was seeded, then time passes under it.
            assert "Pakiet do" in await w.phone().sms("PAKIET")
            w.to(case.asked)
            yield w


# -- the flows ---------------------------------------------------------------------------------


async def test_pakiet_shows_the_current_period(world: World) -> None:
    today = local_day(world.case.asked)
    for msisdn, billing_day in ((JAN, 1), (ANNA, 10)):
        reply = await world.phone(msisdn).sms("PAKIET")
        _, end = period(today, billing_day)
        assert f"Pakiet do {dmy(end)}" in reply, reply
        assert re.search(r"minuty [1-9]\d*/", reply), reply  # usage part-way through the period


async def test_faktura_is_last_periods_invoice(world: World) -> None:
    today = local_day(world.case.asked)
    start, _ = period(today, 1)
    last_start, last_end = period(start - timedelta(days=1), 1)
    reply = await world.phone().sms("FAKTURA")
    assert f"za {dmy(last_start)}-{dmy(last_end)}" in reply, reply


async def test_faktury_cover_the_twelve_months_before_this_period(world: World) -> None:
    today = local_day(world.case.asked)
    start, _ = period(today, 1)
    months = [month_shift(start, -k, 1).strftime("%m.%Y") for k in range(1, 13)]
    phone = world.phone()  # four months a page: FAKTURY, FAKTURY 2, FAKTURY 3
    reply = "\n".join([await phone.sms(f"FAKTURY {page}") for page in ("", "2", "3")])
    assert re.findall(r"^(\d\d\.\d{4}):", reply, re.M) == months, reply
    invoices = await world.backend.invoices(JAN, 12)
    assert all(i.issued <= today for i in invoices)


async def test_taryfa_change_takes_effect_when_the_next_period_begins(world: World) -> None:
    today = local_day(world.case.asked)
    _, end = period(today, 1)
    effective = end + timedelta(days=1)
    phone = world.phone()
    assert f"od {dmy(effective)}" in await phone.sms("TARYFA PLUS")
    assert f"obowiązuje od {dmy(effective)}" in await phone.sms("TAK 111111")
    assert (await world.backend.tariff(JAN)).code == "OPTIMUM"
    # Five minutes before midnight in Warsaw the old tariff holds, five after the new one.
    midnight = datetime(effective.year, effective.month, effective.day, tzinfo=WARSAW)
    world.to(midnight - timedelta(minutes=5))
    assert (await world.backend.tariff(JAN)).code == "OPTIMUM"
    world.to(midnight + timedelta(minutes=5))
    assert (await world.backend.tariff(JAN)).code == "PLUS"
    reply = await phone.sms("PAKIET")
    assert "/300 " in reply and f"Pakiet do {dmy(period(effective, 1)[1])}" in reply, reply


async def test_haslo_expires_after_ten_minutes(world: World) -> None:
    phone = world.phone()
    first = re.search(r"[A-Za-z0-9]{8}", (await phone.sms("HASLO")).split(":")[-1])
    assert first is not None
    world.to(world.case.asked + timedelta(minutes=10, seconds=1))
    assert not await world.backend.verify_temp_password(JAN, first.group(0))
    second = re.search(r"[A-Za-z0-9]{8}", (await phone.sms("HASLO")).split(":")[-1])
    assert second is not None
    world.to(world.case.asked + timedelta(minutes=19))
    assert await world.backend.verify_temp_password(JAN, second.group(0))


async def test_code_lockout_says_until_when_and_ends(world: World) -> None:
    phone = world.phone()
    await phone.sms("TARYFA PLUS")
    await phone.sms("TAK 000000")
    await phone.sms("TAK 000001")
    until = (world.case.asked + timedelta(minutes=15)).astimezone(WARSAW)
    locked = await phone.sms("TAK 000002")
    assert until.strftime("%H:%M %d.%m.%Y") in locked, locked
    world.to(world.case.asked + timedelta(minutes=14, seconds=59))
    # Still locked: said at once, no code asked for.
    assert until.strftime("%H:%M %d.%m.%Y") in await phone.sms("TARYFA PLUS")
    world.to(world.case.asked + timedelta(minutes=15, seconds=1))
    await phone.sms("TARYFA PLUS")
    assert "obowiązuje od" in await phone.sms("TAK 111111")


async def test_profit_history_has_a_line_for_each_invoice(world: World) -> None:
    today = local_day(world.case.asked)
    start, _ = period(today, 10)
    issued = [month_shift(start, -k, 10) for k in range(12)]  # each invoice's issue day
    history = await world.backend.profit_history(ANNA)
    assert [h.day for h in history if h.kind == "invoice"][:12] == issued
    assert all(h.day <= today for h in history)
    assert (await world.backend.profit(ANNA)).points == sum(h.points for h in history)
    reply = await world.phone(ANNA).sms("PROFIT HISTORIA")
    assert f"{dmy(issued[0])} +" in reply, reply


async def test_ussd_session_times_out_after_idle_seconds(world: World) -> None:
    phone = world.phone()
    await phone.dial("*100#")
    world.to(world.case.asked + timedelta(seconds=USSD_IDLE - 1))
    assert "Pakiet" in await phone.ussd("2") and not phone.ended
    world.to(world.case.asked + timedelta(seconds=2 * USSD_IDLE + 1))
    assert "Sesja wygasła" in await phone.ussd("0") and phone.ended


async def test_a_clock_gone_back_shows_that_days_period_and_invoices(world: World) -> None:
    await world.phone().sms("FAKTURY")  # rolled forward to the asked day
    world.to(world.case.seeded)
    day = local_day(world.case.seeded)
    start, end = period(day, 1)
    reply = await world.phone().sms("PAKIET")
    assert f"Pakiet do {dmy(end)}" in reply, reply
    invoices = await world.backend.invoices(JAN, 12)
    assert [i.period_start for i in invoices] == [month_shift(start, -k, 1) for k in range(1, 13)]


def test_cases_cover_the_calendar() -> None:
    """The matrix really holds the days it names (guards the case table itself)."""
    by_name = {c.name: c for c in CASES}
    last = by_name["last_day_of_month"].asked.astimezone(WARSAW)
    assert last.day == calendar.monthrange(last.year, last.month)[1]
    assert local_day(by_name["new_year_in_warsaw"].asked) == date(2027, 1, 1)
    assert by_name["new_year_in_warsaw"].asked.date() == date(2026, 12, 31)  # UTC disagrees
    assert calendar.isleap(2028) and local_day(by_name["leap_day"].asked) == date(2028, 2, 29)
    spring, autumn = by_name["dst_spring"], by_name["dst_autumn"]
    assert (
        spring.seeded.astimezone(WARSAW).utcoffset() != spring.asked.astimezone(WARSAW).utcoffset()
    )
    assert autumn.asked - autumn.seeded == timedelta(hours=1)
    assert autumn.asked.astimezone(WARSAW).hour == autumn.seeded.astimezone(WARSAW).hour
