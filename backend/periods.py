"""Billing periods: a month-long period starting on the account's billing day (1..28)."""

from __future__ import annotations

from datetime import date, timedelta


def _shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def period_start(day: date, billing_day: int) -> date:
    """The first day of the period that contains ``day``."""
    if day.day >= billing_day:
        return day.replace(day=billing_day)
    year, month = _shift(day.year, day.month, -1)
    return date(year, month, billing_day)


def shift_period(start: date, periods: int) -> date:
    year, month = _shift(start.year, start.month, periods)
    return date(year, month, start.day)


def period_of(day: date, billing_day: int) -> tuple[date, date]:
    """``(start, end)`` of the period containing ``day``; ``end`` is inclusive."""
    start = period_start(day, billing_day)
    return start, shift_period(start, 1) - timedelta(days=1)


def next_period_start(day: date, billing_day: int) -> date:
    return shift_period(period_start(day, billing_day), 1)
