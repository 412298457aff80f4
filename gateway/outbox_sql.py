"""The outbox as a table (SQLite embedded, PostgreSQL shared) for deployments without Redis.

One row per item; ``id`` order is production order. A row is leased by an UPDATE that only
succeeds while nobody else holds a live lease (``lease_until``), so two processes never take the
same row; a row is eligible only when no earlier row of the same subscriber is still queued —
replies to one subscriber leave in order. Sent rows are deleted; failed rows stay with
``state = 'failed'`` and the error. The table has its own MetaData (the outbox is gateway
plumbing, not domain data) and is created with ``create_all(checkfirst=True)`` at startup.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.outbox import DEFAULT_LEASE, Outbox, OutboxItem, new_ref

#: Tries of one put when the database cut the connection under it.
PUT_ATTEMPTS = 3

metadata = sa.MetaData()

outbox_table = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("msisdn", sa.String(20), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("meta", sa.Text(), nullable=False, default="{}"),
    sa.Column("ref", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(10), nullable=False, default="queued"),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float(), nullable=False, default=0.0),
    sa.Column("not_before", sa.Float(), nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("accepted", sa.Text(), nullable=False, default="{}"),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Index("ix_outbox_msisdn_id", "msisdn", "id"),
    sa.Index("ix_outbox_state_id", "state", "id"),
)


class SqlOutbox(Outbox):
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.time,
        poll: float = 0.2,
    ) -> None:
        self._engine = engine
        self._lease = lease
        self._clock = clock
        self._poll = poll
        self._ready = False

    async def create(self) -> None:
        """Create the table if missing (idempotent; called lazily too)."""
        if not self._ready:
            async with self._engine.begin() as conn:
                await conn.run_sync(metadata.create_all, checkfirst=True)
            self._ready = True

    async def put(
        self, msisdn: str, texts: str | Sequence[str], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        await self.create()
        meta_json = json.dumps(dict(meta or {}))
        texts = [texts] if isinstance(texts, str) else list(texts)
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                return await self._put(msisdn, texts, meta_json)
            except DBAPIError as exc:
                # The turn already happened: a connection the database cut under the insert is
                # worth another one (the failed transaction left nothing behind).
                if not exc.connection_invalidated or attempt == PUT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _put(self, msisdn: str, texts: list[str], meta_json: str) -> list[str]:
        ids = []
        async with self._engine.begin() as conn:
            for text in texts:
                result = await conn.execute(
                    outbox_table.insert().values(
                        msisdn=msisdn,
                        text=text,
                        meta=meta_json,
                        ref=new_ref(),
                        state="queued",
                        lease_until=0.0,
                        not_before=0.0,
                        attempts=0,
                        accepted="{}",
                        created_at=self._clock(),
                    )
                )
                key = result.inserted_primary_key
                assert key is not None
                ids.append(str(key[0]))
        return ids

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        await self.create()
        deadline = time.monotonic() + wait
        while True:
            out = await self._take_once(consumer, limit)
            if out or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(min(self._poll, max(0.0, deadline - time.monotonic())))

    async def _take_once(self, consumer: str, limit: int) -> list[OutboxItem]:
        t = outbox_table
        earlier = t.alias("earlier")
        now = self._clock()
        blocked = (
            sa.select(earlier.c.id)
            .where(
                earlier.c.msisdn == t.c.msisdn,
                earlier.c.id < t.c.id,
                earlier.c.state == "queued",
            )
            .exists()
        )
        query = (
            sa.select(t)
            .where(
                t.c.state == "queued",
                t.c.lease_until < now,
                t.c.not_before <= now,
                ~blocked,
            )
            .order_by(t.c.id)
            .limit(limit)
        )
        out = []
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).mappings().all()
            for row in rows:
                claimed = await conn.execute(
                    t.update()
                    .where(t.c.id == row["id"], t.c.state == "queued", t.c.lease_until < now)
                    .values(
                        lease_owner=consumer,
                        lease_until=now + self._lease,
                        attempts=t.c.attempts + 1,
                    )
                )
                if claimed.rowcount != 1:
                    continue  # another process leased it between our select and update
                out.append(
                    OutboxItem(
                        str(row["id"]),
                        row["msisdn"],
                        row["text"],
                        json.loads(row["meta"]),
                        row["ref"],
                        row["id"],
                        row["attempts"] + 1,
                        {int(k): v for k, v in json.loads(row["accepted"]).items()},
                    )
                )
        return out

    async def heartbeat(self, consumer: str) -> None:
        t = outbox_table
        now = self._clock()
        async with self._engine.begin() as conn:
            await conn.execute(
                t.update()
                .where(t.c.lease_owner == consumer, t.c.lease_until >= now, t.c.state == "queued")
                .values(lease_until=now + self._lease)
            )

    async def recover(self, consumer: str, dead: Callable[[str], bool]) -> int:
        await self.create()
        t = outbox_table
        live = sa.and_(t.c.state == "queued", t.c.lease_until >= self._clock())
        async with self._engine.begin() as conn:
            owners = (
                await conn.execute(sa.select(t.c.lease_owner).where(live).distinct())
            ).scalars()
            gone = [o for o in owners if o is not None and dead(o)]
            if not gone:
                return 0
            released = await conn.execute(
                t.update()
                .where(live, t.c.lease_owner.in_(gone))
                .values(lease_owner=None, lease_until=0.0)
            )
        return int(released.rowcount or 0)

    async def done(self, item: OutboxItem, message_ids: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(outbox_table.delete().where(outbox_table.c.id == int(item.id)))

    async def retry(
        self, item: OutboxItem, delay: float, error: str, accepted: Mapping[int, str]
    ) -> None:
        merged = {str(k): v for k, v in {**item.accepted, **accepted}.items()}
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_table.update()
                .where(outbox_table.c.id == int(item.id))
                .values(
                    lease_owner=None,
                    lease_until=0.0,
                    not_before=self._clock() + delay,
                    accepted=json.dumps(merged),
                    error=error,
                )
            )

    async def fail(self, item: OutboxItem, error: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                outbox_table.update()
                .where(outbox_table.c.id == int(item.id))
                .values(state="failed", lease_owner=None, lease_until=0.0, error=error)
            )

    async def depth(self) -> int:
        await self.create()
        async with self._engine.connect() as conn:
            query = sa.select(sa.func.count()).where(outbox_table.c.state == "queued")
            return int((await conn.execute(query)).scalar_one())

    async def failed(self) -> list[tuple[OutboxItem, str]]:
        t = outbox_table
        async with self._engine.connect() as conn:
            rows = (
                (await conn.execute(sa.select(t).where(t.c.state == "failed").order_by(t.c.id)))
                .mappings()
                .all()
            )
        return [
            (
                OutboxItem(
                    str(r["id"]), r["msisdn"], r["text"], json.loads(r["meta"]), r["ref"], r["id"]
                ),
                r["error"] or "",
            )
            for r in rows
        ]
