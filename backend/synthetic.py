"""Synthetic subscribers for load tests: 48700000000+i, each on its own account (9.NNNNNNN), with
subscriber code = the last 6 digits of the number, a tariff, a billing day (1..28), usage and
invoices; written by driver-level bulk inserts so 100,000 take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api import Backend
from backend.hashing import keyed_hash
from backend.models import Subscriber
from backend.periods import period_start
from backend.seed import (
    BATCH,
    PAYMENT_METHODS,
    SYNTHETIC_BASE,
    SYNTHETIC_INVOICES,
    TARIFFS,
    Target,
    invoice_rows,
    seed_catalogue,
)
from backend.services.accounts import ACCOUNT_CODE, SUBSCRIBER_CODE

#: The synthetic accounts' numbers (9.NNNNNNN), as a LIKE pattern.
SYNTHETIC_ACCOUNTS = "9.%"


def synthetic_account(index: int) -> str:
    """The account number of synthetic subscriber ``index`` (48700000000 + index)."""
    return f"9.{index:07d}"


async def seed_synthetic(
    target: Backend | AsyncSession,
    n: int,
    secret_key: str | bytes | None = None,
    today: date | None = None,
    invoices: int = SYNTHETIC_INVOICES,
) -> int:
    """``n`` subscribers 48700000000+i, each on its own account; returns subscribers added."""
    t = Target(target, secret_key, today)
    return await t.run(lambda session: _seed_synthetic(session, n, t.key, t.today, invoices))


async def _seed_synthetic(
    session: AsyncSession, n: int, key: bytes, today: date, invoice_count: int
) -> int:
    await seed_catalogue(session)
    if n <= 0:
        return 0
    last = str(SYNTHETIC_BASE + n - 1)
    existing = set(
        await session.scalars(
            select(Subscriber.msisdn).where(
                Subscriber.msisdn >= str(SYNTHETIC_BASE), Subscriber.msisdn <= last
            )
        )
    )
    connection = await session.connection()
    raw = _RawInserter(connection.dialect.name == "sqlite")
    plans = [t for t in TARIFFS if not t[5]]
    methods = [m[0] for m in PAYMENT_METHODS]
    # Periods depend only on the billing day: compute them 28 times, not once per subscriber.
    usage_start = {day: raw.day(period_start(today, day)) for day in range(1, 29)}
    periods = {
        day: [
            (
                f"FV/{p['period_start']:%Y/%m}/",
                raw.day(p["period_start"]),
                raw.day(p["period_end"]),
                raw.day(p["issued"]),
                raw.day(p["due_date"]),
                p["paid"],
            )
            for p in invoice_rows("", day, 0, today, invoice_count, 0)
        ]
        for day in range(1, 29)
    }
    activated, opened = raw.day(date(2024, 1, 1)), raw.day(date(2020, 1, 1))
    added = 0
    for first in range(0, n, BATCH):
        accounts: list[tuple[Any, ...]] = []
        subscribers: list[tuple[Any, ...]] = []
        usage: list[tuple[Any, ...]] = []
        invoices: list[tuple[Any, ...]] = []
        for i in range(first, min(n, first + BATCH)):
            msisdn = str(SYNTHETIC_BASE + i)
            if msisdn in existing:
                continue
            account = synthetic_account(i)
            code = msisdn[-6:]
            plan = plans[i % len(plans)]
            day = 1 + i % 28
            name = f"Abonent {i}"
            accounts.append(
                (
                    account,
                    "individual",
                    name,
                    keyed_hash(key, ACCOUNT_CODE, account, code),
                    f"ul. Testowa {1 + i % 250}",
                    f"{i % 100:02d}-{i % 1000:03d}",
                    "Warszawa",
                    methods[i % len(methods)],
                    day,
                    opened,
                    0,
                )
            )
            subscribers.append(
                (
                    msisdn,
                    account,
                    name,
                    plan[0],
                    keyed_hash(key, SUBSCRIBER_CODE, msisdn, code),
                    "pl",
                    activated,
                    0,
                    0,
                    0,
                )
            )
            usage.append(
                (msisdn, usage_start[day], (i * 37) % (plan[3] + 1), (i * 53) % (plan[4] + 1))
            )
            fee = plan[2]
            invoices.extend(
                (
                    account,
                    prefix + account,
                    start,
                    end,
                    issued,
                    due,
                    fee + (i * 7919 + k * 104729) % 3000,
                    paid,
                )
                for k, (prefix, start, end, issued, due, paid) in enumerate(periods[day], 1)
            )
        await raw.insert(session, "accounts", _ACCOUNT_COLUMNS, accounts)
        await raw.insert(session, "subscribers", _SUBSCRIBER_COLUMNS, subscribers)
        await raw.insert(session, "usage", _USAGE_COLUMNS, usage)
        await raw.insert(session, "invoices", _INVOICE_COLUMNS, invoices)
        added += len(subscribers)
    if added and connection.dialect.name == "postgresql":
        # Fresh statistics: before autovacuum gets round to the tables, the planner believes
        # the empty-table estimates it had and picks whole-table scans for the reads.
        await session.execute(text("ANALYZE accounts, subscribers, usage, invoices"))
    return added


_ACCOUNT_COLUMNS = (
    "number", "kind", "name", "code_hash", "street", "postal_code", "city", "payment_method",
    "billing_day", "opened", "version",
)  # fmt: skip
_SUBSCRIBER_COLUMNS = (
    "msisdn", "account_number", "name", "tariff_code", "code_hash", "language", "activated",
    "version", "code_failures", "password_failures",
)  # fmt: skip
_USAGE_COLUMNS = ("msisdn", "period_start", "minutes_used", "sms_used")
_INVOICE_COLUMNS = (
    "account_number", "number", "period_start", "period_end", "issued", "due_date", "amount",
    "paid",
)  # fmt: skip


class _RawInserter:
    """Driver-level bulk insert of tuples (executemany on SQLite, COPY on PostgreSQL): SQLAlchemy's
    per-row bind processing is most of the cost of a 100,000-subscriber seed. SQLite stores
    dates as ISO text (as SQLAlchemy does), asyncpg takes ``date`` objects."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    def day(self, value: date) -> Any:
        return value.isoformat() if self.sqlite else value

    async def insert(
        self,
        session: AsyncSession,
        table: str,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
    ) -> None:
        if not rows:
            return
        connection = await session.connection()
        if not self.sqlite:
            # COPY on the session's own asyncpg connection, inside its transaction.
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        await connection.exec_driver_sql(sql, rows)
