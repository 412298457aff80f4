"""The demo subscribers are exactly what DESIGN.md promises (read-only, both databases)."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from backend.api import Backend
from backend.errors import NotFound, WrongCode


async def test_demo_1_tariff_and_trzy_i_ja(backend: Backend) -> None:
    summary = await backend.summary("48600000001")
    assert (summary.tariff.minutes, summary.tariff.sms) == (120, 100)
    assert summary.account_number and summary.name
    usage = summary.usage
    assert 0 < usage.minutes_used < usage.minutes_included
    assert 0 < usage.sms_used < usage.sms_included
    assert usage.period_start <= backend.context.today() <= usage.period_end
    favourites = await backend.favourites("48600000001")
    assert favourites.three_active and len(set(favourites.three)) == 3
    assert not (await backend.profit("48600000001")).member
    await backend.check_subscriber_code("48600000001", "111111")


async def test_demo_2_przyjaciel_and_profit(backend: Backend) -> None:
    favourites = await backend.favourites("+48600000002")
    assert favourites.friend_active and favourites.friend is not None
    assert not favourites.three_active
    profit = await backend.profit("48600000002")
    assert profit.member and profit.points > 0
    history = await backend.profit_history("48600000002")
    assert len(history) > 5
    assert sum(t.points for t in history) == profit.points
    assert history == sorted(history, key=lambda t: t.day, reverse=True)
    await backend.check_subscriber_code("48600000002", "222222")


async def test_demo_3_no_optional_services(backend: Backend) -> None:
    assert await backend.services("48600000003") == []
    catalogue = await backend.services("48600000003", include_all=True)
    assert len(catalogue) >= 6 and not any(s.active for s in catalogue)
    await backend.check_subscriber_code("48600000003", "333333")


@pytest.mark.parametrize("msisdn", ["48600000001", "48600000002", "48600000003"])
async def test_every_demo_has_invoices_address_payment(backend: Backend, msisdn: str) -> None:
    invoices = await backend.invoices(msisdn)
    assert len(invoices) == 12
    assert invoices == sorted(invoices, key=lambda i: i.period_start, reverse=True)
    assert len({i.number for i in invoices}) == 12
    for newer, older in pairwise(invoices):
        assert older.period_end + timedelta(days=1) == newer.period_start
    assert await backend.last_invoice(msisdn) == invoices[0]
    assert (await backend.invoices(msisdn, months=3)) == invoices[:3]
    address = await backend.address(msisdn)
    assert address.street and address.city and len(address.postal_code) == 6
    payment = await backend.payment(msisdn)
    assert payment.method in await backend.payment_methods()
    info = await backend.subscriber(msisdn)
    assert info.language == "pl" and info.account_kind == "individual"
    assert await backend.is_subscriber(msisdn)


async def test_wrong_demo_code_and_unknown_number(backend: Backend) -> None:
    assert not await backend.is_subscriber("48999999999")
    with pytest.raises(NotFound):
        await backend.summary("48999999999")
    with pytest.raises(NotFound):
        await backend.usage("48999999999")
    with pytest.raises(NotFound):
        await backend.subscriber("48999999999")
    with pytest.raises(WrongCode):
        await backend.check_subscriber_code("48600000003", "000000")
    await backend.check_subscriber_code("48600000003", "333333")  # resets the counter


async def test_reference_data(backend: Backend) -> None:
    tariffs = await backend.tariffs()
    assert len(tariffs) >= 4 and all(t.monthly_fee > 0 for t in tariffs)
    codes = {s.code for s in await backend.services("48600000003", include_all=True)}
    assert {"3IJA", "PRZYJACIEL", "ROAMING", "INTERNET1GB", "POCZTAGLOSOWA", "MMS"} <= codes
    assert {m.code for m in await backend.payment_methods()} >= {
        "PRZELEW",
        "POLECENIE_ZAPLATY",
        "KARTA",
    }
    for kind in ("zlecenie", "reklamacja"):
        types = await backend.letter_types(kind)
        assert [t.code for t in types] == [str(i) for i in range(1, len(types) + 1)]
    detail = await backend.service("48600000001", "3ija")
    assert detail.active and detail.url.startswith("https://") and len(detail.numbers) == 3
    assert detail.settings_schema == {"numbers": 3, "change_fee": 300}
