"""Services, favourites and numbers: quotes first, idempotent changes, charges and audit rows."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from backend.api import Backend
from backend.errors import InvalidInput, NotFound
from backend.models import AuditEntry, Charge
from backend.numbers import parse_polish_number


async def _audit(backend: Backend, msisdn: str) -> list[tuple[str, str]]:
    async with backend.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.msisdn == msisdn).order_by(AuditEntry.id)
        )
        return [(r.action, r.channel) for r in rows]


async def _charges(backend: Backend, msisdn: str) -> list[int]:
    async with backend.sessionmaker() as session:
        return list(await session.scalars(select(Charge.amount).where(Charge.msisdn == msisdn)))


async def test_activate_is_quoted_and_idempotent(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    quote = await backend.quote_activation(msisdn, "noce")
    assert quote.changes and quote.fee == 1000 and quote.monthly_fee == 500
    change = await backend.activate(msisdn, "NOCE", "sms")
    assert change.changed and change.fee == 1000
    again = await backend.quote_activation(msisdn, "NOCE")
    assert not again.changes and again.fee == 0
    assert not (await backend.activate(msisdn, "NOCE", "ussd")).changed
    assert await _charges(backend, msisdn) == [1000]
    assert [s.code for s in await backend.services(msisdn)] == ["NOCE"]
    assert (await backend.service(msisdn, "noce")).active
    off = await backend.quote_deactivation(msisdn, "NOCE")
    assert off.changes and off.fee == 0 and off.monthly_fee == 0
    assert (await backend.deactivate(msisdn, "NOCE", "web")).changed
    assert not (await backend.deactivate(msisdn, "NOCE", "web")).changed
    assert not (await backend.quote_deactivation(msisdn, "NOCE")).changes
    assert await backend.services(msisdn) == []
    assert await _audit(backend, msisdn) == [("activate", "sms"), ("deactivate", "web")]


async def test_unknown_service_and_subscriber(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    for call in (backend.quote_activation, backend.service, backend.quote_deactivation):
        with pytest.raises(NotFound):
            await call(msisdn, "NOPE")
    with pytest.raises(NotFound):
        await backend.activate(msisdn, "NOPE", "sms")
    with pytest.raises(NotFound):
        await backend.activate("48999999997", "MMS", "sms")
    with pytest.raises(NotFound):
        await backend.services("48999999997")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("601234567", "48601234567"),
        ("+48 601 234 567", "48601234567"),
        ("48-601-234-567", "48601234567"),
        ("0048601234567", "48601234567"),
        ("(+48) 601.234.567", "48601234567"),
    ],
)
def test_polish_numbers_normalised(text: str, expected: str) -> None:
    assert parse_polish_number(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("12345", "invalid"), ("+44 20 7946 0958", "not_polish"), ("60123456a", "invalid"),
     ("100000000", "invalid")],
)  # fmt: skip
def test_bad_numbers_rejected(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_polish_number(text)
    assert (info.value.field, info.value.reason) == ("number", reason)


async def test_trzy_i_ja_rules(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    good = ["601234567", "+48 602 345 678", "48-603-456-789"]
    cases = [
        (good[:2], "count"),
        ([*good, "604567890"], "count"),
        (["601234567", "+48601234567", "603456789"], "duplicate"),
        (["601234567", msisdn, "603456789"], "own_number"),
        (["601234567", "12", "603456789"], "invalid"),
    ]
    for numbers, reason in cases:
        with pytest.raises(InvalidInput) as info:
            await backend.quote_favourites(msisdn, "3ija", numbers)
        assert (info.value.field, info.value.reason) == ("numbers", reason)
        with pytest.raises(InvalidInput):
            await backend.set_favourites(msisdn, "3ija", numbers, "sms")
    with pytest.raises(InvalidInput) as kind:
        await backend.quote_favourites(msisdn, "czworo", good)
    assert kind.value.field == "kind"

    # not active yet: setting numbers activates the service at its activation fee
    quote = await backend.quote_favourites(msisdn, "3ija", good)
    assert quote.changes and quote.fee == 500 and quote.monthly_fee == 500
    change = await backend.set_favourites(msisdn, "3ija", good, "sms")
    assert change.changed and change.fee == 500
    favourites = await backend.favourites(msisdn)
    assert favourites.three == ("48601234567", "48602345678", "48603456789")
    # same numbers in another order: nothing to do
    same = ["603456789", "601234567", "602345678"]
    assert not (await backend.quote_favourites(msisdn, "3ija", same)).changes
    assert not (await backend.set_favourites(msisdn, "3ija", same, "sms")).changed
    # a real change costs the change fee
    other = ["601234567", "602345678", "605000111"]
    assert (await backend.quote_favourites(msisdn, "3ija", other)).fee == 300
    assert (await backend.set_favourites(msisdn, "3ija", other, "ussd")).fee == 300
    assert (await backend.favourites(msisdn)).three[2] == "48605000111"
    assert await _charges(backend, msisdn) == [500, 300]
    assert [a for a, _ in await _audit(backend, msisdn)] == ["favourites", "favourites"]


async def test_przyjaciel_one_number(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    with pytest.raises(InvalidInput) as info:
        await backend.set_favourites(msisdn, "przyjaciel", ["601234567", "602345678"], "sms")
    assert info.value.reason == "count"
    # activated first without a number: the first number is free
    await backend.activate(msisdn, "PRZYJACIEL", "sms")
    assert (await backend.favourites(msisdn)).friend is None
    quote = await backend.quote_favourites(msisdn, "przyjaciel", ["601 234 567"])
    assert quote.changes and quote.fee == 0
    await backend.set_favourites(msisdn, "Przyjaciel", ["601 234 567"], "sms")
    favourites = await backend.favourites(msisdn)
    assert favourites.friend_active and favourites.friend == "48601234567"
    assert (await backend.quote_favourites(msisdn, "przyjaciel", ["602345678"])).fee == 200
    assert (await backend.service(msisdn, "PRZYJACIEL")).numbers == ("48601234567",)
