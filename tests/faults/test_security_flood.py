"""Flooding from one number, by SMS and USSD sessions: polite refusals to it, service for others.

Two Runtimes (two server processes) share one Redis store, so the per-subscriber turn counter
(``Runtime(rate_limit=60, rate_window=60)``, the server's defaults) is shared too. A flooder's
first SMS past the limit gets the catalogue's ``notice.rate_limited`` text, later ones in the
window nothing (an auto-responder gets one SMS, not one per message); USSD turns past it get the
text as a final screen every time. None does any work; other subscribers, texting and dialling
at the same time, get every answer. The
temporary password has its own limit (3 an hour), answered with ``error.rate_limited``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.api import Backend
from backend.db import open_backend
from backend.manage import seed
from dialogs import build_dialogs
from dialogs.catalogue import pl
from fsm.redis_store import RedisStore, store_from_url
from fsm.runtime import Inbound, Reply, Runtime

pytestmark = pytest.mark.redis

SECRET = "flood-secret"
LIMITED = pl.TEXTS["notice.rate_limited"]
SMS_FLOOD, USSD_FLOOD, NEIGHBOUR_TURNS = 300, 200, 30


@pytest.fixture
async def backend(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    template = tmp_path_factory.getbasetemp() / "flood-template.db"
    if not template.exists():
        await seed(f"sqlite+aiosqlite:///{template}", SECRET, demo=True)
    db = tmp_path / "idea24.db"
    shutil.copy(template, db)
    async with open_backend(f"sqlite+aiosqlite:///{db}", SECRET) as b:
        yield b


@pytest.fixture
async def runtimes(
    backend: Backend, redis_server_url: str, redis_prefix: str, redis_client: object
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two runtimes on two stores built as the server builds them (blocking pool of 64)."""
    stores = [store_from_url(redis_server_url, prefix=redis_prefix) for _ in range(2)]
    try:
        yield (
            Runtime(stores[0], build_dialogs(), backend),
            Runtime(stores[1], build_dialogs(), backend),
        )
    finally:
        for store in stores:
            await store.aclose()


def kind(replies: list[Reply]) -> str:
    if not replies:
        return "silent"
    assert len(replies) == 1 and replies[0].text.strip()
    text = replies[0].text
    if text == LIMITED:
        assert replies[0].end  # a limited USSD turn ends the session
        return "limited"
    assert "błąd" not in text and "Przetwarzamy" not in text, text  # no error, no busy notice
    return "served"


async def test_sms_and_ussd_floods_are_limited_per_subscriber(
    runtimes: tuple[Runtime, Runtime],
) -> None:
    flooder, ussd_flooder = "48600000001", "48600000010"
    neighbours = ("48600000002", "48600000003", "48600000011")
    counts: dict[str, Counter[str]] = {m: Counter() for m in (flooder, ussd_flooder, *neighbours)}

    async def sms(i: int, msisdn: str, text: str) -> None:
        counts[msisdn][kind(await runtimes[i % 2].turn(Inbound(msisdn, "sms", text)))] += 1

    async def dial(i: int, msisdn: str) -> None:
        inbound = Inbound(msisdn, "ussd", "*100#", session_id=f"flood{i}")
        counts[msisdn][kind(await runtimes[i % 2].turn(inbound))] += 1

    async def neighbour(msisdn: str) -> None:
        for i in range(NEIGHBOUR_TURNS):
            if i % 3 == 2:
                await dial(i, msisdn)
            else:
                await sms(i, msisdn, "PAKIET")

    await asyncio.gather(
        *(sms(i, flooder, "PAKIET") for i in range(SMS_FLOOD)),
        *(dial(i, ussd_flooder) for i in range(USSD_FLOOD)),
        *(neighbour(m) for m in neighbours),
    )
    limit = runtimes[0].rate_limit
    # SMS: one "too many messages" reply per window, then silence (no SMS per flooding MO).
    assert counts[flooder] == {"served": limit, "limited": 1, "silent": SMS_FLOOD - limit - 1}
    assert counts[ussd_flooder] == {"served": limit, "limited": USSD_FLOOD - limit}
    for m in neighbours:
        assert counts[m] == {"served": NEIGHBOUR_TURNS}, (m, counts[m])
    print(
        f"\nflood: SMS flooder {dict(counts[flooder])} of {SMS_FLOOD}, USSD flooder "
        f"{dict(counts[ussd_flooder])} of {USSD_FLOOD} sessions (limit {limit}/"
        f"{runtimes[0].rate_window:.0f}s over 2 runtimes); {len(neighbours)} neighbours served "
        f"{sum(counts[m]['served'] for m in neighbours)}/{len(neighbours) * NEIGHBOUR_TURNS}"
    )


async def test_the_limit_is_a_window_not_a_ban(
    backend: Backend, redis_client: Any, redis_prefix: str
) -> None:
    runtime = Runtime(
        RedisStore(redis_client, redis_prefix),
        build_dialogs(),
        backend,
        rate_limit=5,
        rate_window=2.0,
    )
    first: Counter[str] = Counter()
    for _ in range(12):
        first[kind(await runtime.turn(Inbound("48600000003", "sms", "INFO")))] += 1
    await asyncio.sleep(2.1)  # the window itself is what must pass
    after = kind(await runtime.turn(Inbound("48600000003", "sms", "INFO")))
    assert first == {"served": 5, "limited": 1, "silent": 6} and after == "served"
    print(f"\nwindow: {dict(first)} within 2 s, then served again")


async def test_temporary_password_requests_are_limited(runtimes: tuple[Runtime, Runtime]) -> None:
    replies = [
        (await runtimes[i % 2].turn(Inbound("48600000002", "sms", "HASLO")))[0].text
        for i in range(10)
    ]
    password = pl.TEXTS["password"].split("{")[0]
    limited = pl.TEXTS["error.rate_limited"].split("{")[0]
    sent = sum(r.startswith(password) for r in replies)
    refused = sum(r.startswith(limited) for r in replies)
    assert (sent, refused) == (3, 7), replies
    print(f"\nHASLO flood: 10 requests, {sent} passwords sent, {refused} told to wait")
