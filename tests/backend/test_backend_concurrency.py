"""Concurrent changes to one subscriber from two engines (two processes' worth of pools):
each is applied or cleanly idempotent, none is lost, every applied one has its audit row."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from backend.api import Backend
from backend.errors import LockedOut
from backend.models import AuditEntry, Charge


async def _count(backend: Backend, model: Any, msisdn: str, **where: Any) -> int:
    async with backend.sessionmaker() as session:
        query = select(func.count()).select_from(model).where(model.msisdn == msisdn)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_different_changes_at_once_are_all_applied(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh()
    codes = ["NOCE", "MMS", "ROAMING", "INTERNET1GB", "SMS100", "POCZTAGLOSOWA"]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                (backend if i % 2 else other).activate(msisdn, code, "sms")
                for i, code in enumerate(codes)
            ),
            backend.set_favourites(msisdn, "przyjaciel", ["601234567"], "ussd"),
            other.set_favourites(msisdn, "3ija", ["601234567", "602345678", "603456789"], "web"),
        ),
        timeout=60,
    )
    assert all(r.changed for r in results)
    active = {s.code for s in await backend.services(msisdn)}
    assert active == {*codes, "PRZYJACIEL", "3IJA"}
    favourites = await other.favourites(msisdn)
    assert favourites.friend == "48601234567" and len(favourites.three) == 3
    assert await _count(backend, AuditEntry, msisdn) == len(codes) + 2


async def test_same_activation_at_once_applies_once(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh()
    for _ in range(3):
        results = await asyncio.wait_for(
            asyncio.gather(
                backend.activate(msisdn, "NOCE", "sms"),
                other.activate(msisdn, "NOCE", "ussd"),
                backend.activate(msisdn, "NOCE", "web"),
            ),
            timeout=60,
        )
        assert sum(r.changed for r in results) == 1
        off = await asyncio.wait_for(
            asyncio.gather(
                other.deactivate(msisdn, "NOCE", "sms"), backend.deactivate(msisdn, "NOCE", "sms")
            ),
            timeout=60,
        )
        assert sum(r.changed for r in off) == 1
    assert await _count(backend, Charge, msisdn) == 3  # one activation fee per real activation
    assert await _count(backend, AuditEntry, msisdn, action="activate") == 3
    assert await _count(backend, AuditEntry, msisdn, action="deactivate") == 3


async def test_competing_favourites_never_lose_a_change(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh()
    await backend.set_favourites(msisdn, "3ija", ["601000001", "601000002", "601000003"], "sms")
    sets = [
        ["601000001", "601000002", "601000004"],
        ["601000005", "601000006", "601000007"],
    ]
    results = await asyncio.wait_for(
        asyncio.gather(
            backend.set_favourites(msisdn, "3ija", sets[0], "sms"),
            other.set_favourites(msisdn, "3ija", sets[1], "ussd"),
        ),
        timeout=60,
    )
    assert all(r.changed and r.fee == 300 for r in results)  # each paid for a real change
    final = (await backend.favourites(msisdn)).three
    assert final in {tuple("48" + n for n in s) for s in sets}
    assert await _count(backend, AuditEntry, msisdn, action="favourites") == 3
    assert await _count(backend, Charge, msisdn, kind="number_change") == 2


async def test_password_failures_counted_under_concurrency(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh()
    await backend.issue_temp_password(msisdn)
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            *((backend, other)[i % 2].verify_temp_password(msisdn, "WRONGPW2") for i in range(6)),
            return_exceptions=True,
        ),
        timeout=60,
    )
    falses = [o for o in outcomes if o is False]
    locks = [o for o in outcomes if isinstance(o, LockedOut)]
    assert len(falses) == 4 and len(locks) == 2  # the 5th locks, the 6th finds it locked
