"""Address, letters to customer care, Program Profit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from backend.api import Backend
from backend.errors import InvalidInput, NotFound, WrongCode
from backend.models import AuditEntry
from backend.records import Address
from backend.services.accounts import parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ul. Długa 5/3, 00-950 Warszawa", Address("ul. Długa 5/3", "00-950", "Warszawa")),
        ("  ul.  Długa 5/3   00-950   Warszawa ", Address("ul. Długa 5/3", "00-950", "Warszawa")),
        ("00-950 Warszawa, ul. Długa 5/3", Address("ul. Długa 5/3", "00-950", "Warszawa")),
        (
            "al. Jana Pawła II 12, 61-139 Poznań",
            Address("al. Jana Pawła II 12", "61-139", "Poznań"),
        ),
        ("Rynek 1, 43-300 Bielsko-Biała", Address("Rynek 1", "43-300", "Bielsko-Biała")),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert parse_address(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("ul. Długa 5/3, Warszawa", "postal_code", "missing"),
        ("ul. Długa 5/3, 00950 Warszawa", "postal_code", "format"),
        ("ul. Długa 5/3, 0-950 Warszawa", "postal_code", "format"),
        ("ul. Długa 5/3, 00-950", "city", "missing"),
        ("ul. Długa 5/3, 00-950 W4rszawa", "city", "invalid"),
        ("00-950 Warszawa", "street", "missing"),
        ("ul. Długa, 00-950 Warszawa", "street", "no_number"),
    ],
)
def test_bad_addresses(text: str, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_address(text)
    assert (info.value.field, info.value.reason) == (field, reason)


async def test_change_address(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh(code="123456")
    new = backend.parse_address("ul. Nowa 7, 30-001 Kraków")
    with pytest.raises(WrongCode):  # the code is checked by the change itself
        await backend.change_address(msisdn, new, "sms", subscriber_code="654321")
    assert await backend.address(msisdn) != new
    change = await backend.change_address(msisdn, new, "sms", subscriber_code="123456")
    assert change.changed and change.fee == 0
    assert await backend.address(msisdn) == new
    same = await backend.change_address(
        msisdn, "ul. Nowa 7, 30-001 Kraków", "ussd", subscriber_code="123456"
    )
    assert not same.changed
    with pytest.raises(InvalidInput):
        bad = Address("ul. Nowa 7", "30001", "Kraków")
        await backend.change_address(msisdn, bad, "sms", subscriber_code="123456")
    async with backend.sessionmaker() as session:
        audit = list(await session.scalars(select(AuditEntry).where(AuditEntry.msisdn == msisdn)))
    assert [(a.action, a.channel, a.actor) for a in audit] == [("address", "sms", msisdn)]
    assert "Nowa" not in str(audit[0].detail)  # personal data stays out of the audit detail


async def test_letters(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh()
    types = await backend.letter_types("Zlecenie")
    first = await backend.file_letter(
        msisdn, "zlecenie", types[0].code, "FV/2026/01", "Proszę o duplikat.", "sms"
    )
    assert first.reference.startswith(f"ZL/{clock.now.year}/")
    assert len(first.reference.split("/")[2]) == 6
    assert first.status == "received" and first.type_name == types[0].name
    second = await backend.file_letter(msisdn, "reklamacja", "2", "", "Zrywa połączenia.", "ussd")
    assert second.reference.startswith("RK/") and second.reference != first.reference
    with pytest.raises(InvalidInput) as kind:
        await backend.letter_types("skarga")
    assert kind.value.field == "kind"
    for args, field in [
        (("zlecenie", "99", "", "x"), "type_code"),
        (("zlecenie", "1", "", "   "), "description"),
        (("zlecenie", "1", "", "x" * 1001), "description"),
        (("zlecenie", "1", "d" * 501, "x"), "data"),
    ]:
        with pytest.raises(InvalidInput) as info:
            await backend.file_letter(msisdn, *args, "sms")
        assert info.value.field == field
    with pytest.raises(NotFound):
        await backend.file_letter("48999999996", "zlecenie", "1", "", "x", "sms")


async def test_profit_join_points_history(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    profit = await backend.profit(msisdn)
    assert not profit.member and profit.points == 0 and profit.joined is None
    assert await backend.profit_history(msisdn) == []
    joined = await backend.profit_join(msisdn, "sms")
    assert joined.member and joined.points == 100 and joined.joined == backend.context.today()
    assert await backend.profit_join(msisdn, "ussd") == joined  # idempotent, no second bonus
    history = await backend.profit_history(msisdn)
    assert [(t.points, t.kind) for t in history] == [(100, "welcome")]
    with pytest.raises(NotFound):
        await backend.profit("48999999995")
