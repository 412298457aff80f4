"""The one clock: every "now" of the domain comes from an object passed in, never from a global.

``now()`` is an aware UTC instant (audit rows, lockout ends, password expiry); ``today()`` is the
subscriber's calendar day in Poland, which billing periods, invoices and effective dates count in
(at 00:30 on the 1st in Warsaw it is already the new month, while UTC still says the 31st);
``monotonic()`` measures elapsed seconds for timers (dialog timeouts, rate windows) that must not
jump when the wall clock is set. ``gateway/app.py`` builds one :class:`SystemClock` and hands it
to the backend, the seed and the dialog store; tests pass their own or travel with
``time-machine`` (which moves ``now`` and ``today`` but not ``monotonic``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

#: The subscribers' time zone: calendar days, billing periods, times shown in texts.
LOCAL_TZ = ZoneInfo("Europe/Warsaw")


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware, in UTC."""

    def today(self) -> date:
        """The current calendar day in Europe/Warsaw."""

    def monotonic(self) -> float:
        """Seconds for measuring elapsed time (any origin; never goes back)."""


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return local_day(self.now())

    def monotonic(self) -> float:
        return time.monotonic()


class FunctionClock:
    """A clock read from a function returning an aware ``datetime`` (a test's settable time);
    its ``monotonic`` follows that function, so timers move when the test moves the time."""

    def __init__(self, read: Callable[[], datetime]) -> None:
        self._read = read

    def now(self) -> datetime:
        return self._read().astimezone(UTC)

    def today(self) -> date:
        return local_day(self._read())

    def monotonic(self) -> float:
        return self._read().timestamp()


def local_day(instant: datetime) -> date:
    """The Warsaw calendar day of an aware instant."""
    return instant.astimezone(LOCAL_TZ).date()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """``clock`` as a :class:`Clock`: the system clock for ``None``, a :class:`FunctionClock`
    for a plain function returning the time."""
    if clock is None:
        return SystemClock()
    if isinstance(clock, Clock):
        return clock
    return FunctionClock(clock)
