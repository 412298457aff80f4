"""A backlog on a table PostgreSQL has no statistics for yet: the take leases what it was asked.

After an outage the outbox can hold hundreds of replies before the planner has seen the table
(autovacuum analyses it a minute later at best). With the choice written as ``id IN (SELECT …
LIMIT n FOR UPDATE SKIP LOCKED)`` PostgreSQL planned a nested loop that ran the subquery once
per queued row: 600 queued replies for 50 subscribers gave 50 rows for a LIMIT of 32, in 9.7 s
a take, and a link that drained its backlog at a few replies a second. The choice is now a
materialised CTE, run once.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.outbox.sql import SqlOutbox, outbox_table

pytestmark = pytest.mark.postgres

SUBSCRIBERS, EACH = 50, 12


async def test_take_on_an_unanalysed_backlog_leases_the_limit_in_order(
    own_postgres_url: str,
) -> None:
    engine = create_async_engine(own_postgres_url)
    try:
        box = SqlOutbox(engine)
        await box.create()
        msisdns = [f"4870000{n:04d}" for n in range(SUBSCRIBERS)]
        for turn in range(EACH):
            for msisdn in msisdns:
                await box.put(msisdn, f"reply {turn}")
        async with engine.connect() as conn:
            analysed = await conn.scalar(
                sa.text(
                    "SELECT coalesce(last_analyze, last_autoanalyze) FROM pg_stat_user_tables"
                    " WHERE relname = 'outbox'"
                )
            )
        assert analysed is None, "the case needs a table without statistics"

        first = await box.take("c1", 32)
        assert len(first) == 32
        assert {i.text for i in first} == {"reply 0"}
        second = await box.take("c2", 32)
        # 18 subscribers still have their first reply queued; the others wait for theirs.
        assert len(second) == SUBSCRIBERS - 32
        assert {i.text for i in second} == {"reply 0"}
        assert not {i.msisdn for i in first} & {i.msisdn for i in second}
        for item in [*first, *second]:
            await box.done(item, ["m"])
        third = await box.take("c1", 64)
        assert len(third) == SUBSCRIBERS and {i.text for i in third} == {"reply 1"}
        async with engine.connect() as conn:
            leased = await conn.scalar(
                sa.select(sa.func.count()).where(outbox_table.c.lease_owner.is_not(None))
            )
        assert leased == SUBSCRIBERS
    finally:
        await engine.dispose()
