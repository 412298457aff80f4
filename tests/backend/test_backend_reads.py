"""The one-statement reads (backend/services/reads.py, readers.py): the right runner per
database, and a PostgreSQL read survives its pooled connections being killed (invalidated,
retried once)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from backend.api import Backend
from backend.db import create_engine
from backend.services.readers import AsyncpgReads, InlineSqliteReads, PooledReads, reads_for
from tests.conftest import PG_ADMIN_DSN, kill_connections


async def test_runner_per_database(tmp_path: Path) -> None:
    cases = [
        (f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", InlineSqliteReads),
        ("sqlite+aiosqlite://", PooledReads),  # in memory: private to its connection
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", AsyncpgReads),
    ]
    for url, kind in cases:
        engine = create_engine(url)
        reads = reads_for(engine)
        try:
            assert isinstance(reads, kind), url
        finally:
            reads.close()
            await engine.dispose()


async def test_reads_agree_with_the_records(backend: Backend) -> None:
    summary = await backend.summary("48600000001")
    assert summary.usage == await backend.usage("48600000001")
    assert summary.last_invoice == await backend.last_invoice("48600000001")
    assert summary.tariff == await backend.tariff("48600000001")
    mine = {s.code for s in await backend.services("48600000001")}
    assert mine == {"3IJA", "MMS"}
    assert (await backend.service("48600000001", "3ija")).numbers == (
        "48601234567",
        "48602345678",
        "48603456789",
    )


@pytest.mark.postgres
async def test_postgres_read_after_connections_were_killed(pg_seeded: str) -> None:
    from backend.db import open_backend

    async with open_backend(pg_seeded, "test-secret-key") as backend:
        assert (await backend.usage("48600000001")).minutes_included == 120
        database = pg_seeded.rsplit("/", 1)[1]
        killed = await kill_connections(database)
        assert killed >= 1
        assert (await backend.usage("48600000001")).minutes_included == 120
        assert (await backend.subscriber("48600000001")).language == "pl"


@pytest.mark.postgres
async def test_postgres_read_connection_is_released_without_a_reset_round_trip(
    pg_seeded: str,
) -> None:
    """A read pool connection goes back to the pool with nothing sent after its SELECT (the
    server's last statement of it is the read, not asyncpg's RESET ALL), and a transaction
    left open on one is still rolled back on release."""
    from backend.db import open_backend

    async with open_backend(pg_seeded, "test-secret-key") as backend:
        assert (await backend.usage("48600000001")).minutes_included == 120
        reads = backend.context.reads
        assert isinstance(reads, AsyncpgReads)
        pool = reads.pool.pool
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            async with pool.acquire() as conn:
                pid = conn.get_server_pid()
            last = await admin.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
            assert "RESET ALL" not in last and "SELECT" in last, last
            conn = await pool.acquire()
            tx = conn.transaction()
            await tx.start()
            await conn.fetchval("SELECT 1")
            await pool.release(conn)
            async with pool.acquire() as again:
                assert not again.is_in_transaction()
        finally:
            await admin.close()
        assert (await backend.summary("48600000002")).msisdn == "48600000002"


async def test_inline_sqlite_rows_equal_sqlalchemy_rows(sqlite_template: Path) -> None:
    """Raw sqlite3 with the compiled SQL and processors gives what SQLAlchemy gives (dates too)."""
    from datetime import date

    from backend.services import reads

    engine = create_engine(f"sqlite+aiosqlite:///{sqlite_template}")
    inline, pooled = InlineSqliteReads(engine), PooledReads(engine)
    today = date.today()
    try:
        for msisdn in ("48600000001", "48600000002", "48999999999"):
            for statement in (reads.USAGE, reads.SUMMARY):
                mine = await inline.one(statement, msisdn=msisdn, today=today)
                theirs = await pooled.one(statement, msisdn=msisdn, today=today)
                assert (mine is None) == (theirs is None)
                if mine is not None and theirs is not None:
                    assert tuple(mine) == tuple(theirs)
                    assert [type(v) for v in mine] == [type(v) for v in theirs]
            got = await inline.one(reads.SUBSCRIBER, msisdn=msisdn)
            want = await pooled.one(reads.SUBSCRIBER, msisdn=msisdn)
            assert (None if got is None else tuple(got)) == (None if want is None else tuple(want))
            for code in ("3IJA", "MMS", "NONE"):
                got = await inline.one(reads.ACTIVE_ONE, msisdn=msisdn, code=code)
                want = await pooled.one(reads.ACTIVE_ONE, msisdn=msisdn, code=code)
                assert (None if got is None else tuple(got)) == (
                    None if want is None else tuple(want)
                )
            assert [tuple(r) for r in await inline.all(reads.ACTIVE_ALL, msisdn=msisdn)] == [
                tuple(r) for r in await pooled.all(reads.ACTIVE_ALL, msisdn=msisdn)
            ]
        summary = await inline.one(reads.SUMMARY, msisdn="48600000001", today=today)
        assert summary is not None and isinstance(summary.invoice_start, date)
    finally:
        inline.close()
        await engine.dispose()


async def test_reads_of_one_tick_agree_with_reads_one_by_one(backend: Backend) -> None:
    """Concurrent turns' reads go as one statement per kind on PostgreSQL (``= ANY``): each
    caller still gets its own subscriber's rows, an unknown number gets nothing, and a
    subscriber asked twice in the tick gets the same answer twice."""
    import asyncio

    from backend.errors import NotFound

    numbers = ["48600000001", "48600000002", "48600000003", "48600000010", "48600000011"]
    alone = [await backend.usage(m) for m in numbers]
    services_alone = [sorted(s.code for s in await backend.services(m)) for m in numbers]
    together = await asyncio.gather(
        *(backend.usage(m) for m in numbers + numbers[:2]),
        backend.usage("48699999999"),
        return_exceptions=True,
    )
    assert list(together[: len(numbers)]) == alone
    assert list(together[len(numbers) : len(numbers) + 2]) == alone[:2]
    assert isinstance(together[-1], NotFound)
    services = await asyncio.gather(*(backend.services(m) for m in numbers))
    assert [sorted(s.code for s in found) for found in services] == services_alone
    reads = backend.context.reads
    if isinstance(reads, AsyncpgReads):
        assert reads.batches >= 2, "usage and services each went as one statement"


@pytest.mark.postgres
async def test_postgresql_lateral_form_gives_the_same_rows(pg_seeded: str) -> None:
    """PostgreSQL runs USAGE and SUMMARY as LEFT JOIN LATERAL probes (``POSTGRESQL_FORM``); on
    rows that make every "newest" choice matter — several tariff requests (pending and not),
    a usage period not begun yet, several invoices, a subscriber with none — both forms give
    the same rows, one subscriber at a time and as one ``= ANY`` statement."""
    from datetime import datetime, timedelta

    from sqlalchemy import text

    from backend.periods import shift_period
    from backend.services import reads

    numbers = ["48600000001", "48600000002", "48600000003", "48699999999"]
    engine = create_engine(pg_seeded)
    try:
        async with engine.connect() as conn:
            trans = await conn.begin()
            # "today" is a day inside the seeded current bundle period, whatever the date the
            # seed ran on; every other date below is placed relative to it.
            start = await conn.scalar(
                text("SELECT max(period_start) FROM usage WHERE msisdn = '48600000001'")
            )
            today = start + timedelta(days=3)
            account = await conn.scalar(
                text("SELECT account_number FROM subscribers WHERE msisdn = '48600000001'")
            )
            created = datetime.combine(today - timedelta(days=20), datetime.min.time())
            await conn.execute(
                text(
                    "INSERT INTO change_requests (msisdn, kind, value, status, created_at,"
                    " effective) VALUES (:m, 'tariff', :v, :s, :t, :e)"
                ),
                [
                    {"m": "48600000001", "v": v, "s": s, "t": created, "e": e}
                    for v, s, e in (
                        ("T1", "pending", shift_period(start, 1)),
                        ("T2", "pending", shift_period(start, 2)),  # newest pending: this one
                        ("T3", "done", start),
                    )
                ],
            )
            await conn.execute(
                text(
                    "INSERT INTO usage (msisdn, period_start, minutes_used, sms_used)"
                    " VALUES ('48600000001', :later, 999, 999)"  # not begun: skipped
                    " ON CONFLICT DO NOTHING"
                ),
                {"later": shift_period(start, 3)},
            )
            await conn.execute(
                text(
                    "INSERT INTO invoices (account_number, number, period_start, period_end,"
                    " issued, due_date, amount, paid) VALUES (:a, 'FV/TEST/1', '2020-01-01',"
                    " '2020-01-31', '2020-02-01', '2020-02-15', 1, true)"  # old: not the last
                ),
                {"a": account},
            )
            for statement in (reads.USAGE, reads.SUMMARY):
                lateral = reads.POSTGRESQL_FORM[statement]
                assert "LATERAL" in str(lateral.compile(dialect=engine.dialect))
                assert list(lateral.selected_columns.keys()) == list(
                    statement.selected_columns.keys()
                )
                for msisdn in numbers:
                    params = {"msisdn": msisdn, "today": today}
                    want = (await conn.execute(statement, params)).all()
                    got = (await conn.execute(lateral, params)).all()
                    assert [tuple(r) for r in got] == [tuple(r) for r in want], msisdn
                many = {"msisdns": numbers, "today": today}
                want_many = (await conn.execute(reads.for_many(statement), many)).all()
                got_many = (await conn.execute(reads.for_many(lateral), many)).all()
                assert sorted(map(tuple, got_many)) == sorted(map(tuple, want_many))
                assert len(got_many) == 3  # the unknown number has no row
            first = (
                await conn.execute(
                    reads.POSTGRESQL_FORM[reads.SUMMARY], {"msisdn": numbers[0], "today": today}
                )
            ).one()
            assert first.pending_tariff == "T2"
            assert first.usage_start is not None and first.usage_start <= today
            assert first.invoice_number != "FV/TEST/1"
            await trans.rollback()
    finally:
        await engine.dispose()
