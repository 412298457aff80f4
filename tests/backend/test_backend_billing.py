"""Usage, invoices, payment method requests, tariff changes effective from the next period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backend.api import Backend
from backend.errors import Conflict, InvalidInput, NotAllowed, NotFound
from backend.periods import next_period_start, period_of


async def test_usage_used_and_left(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh(tariff="START", minutes_used=70, sms_used=20)
    usage = await backend.usage(msisdn)
    assert (usage.minutes_included, usage.minutes_used, usage.minutes_left) == (60, 70, 0)
    assert (usage.sms_included, usage.sms_used, usage.sms_left) == (50, 20, 30)
    summary = await backend.summary(msisdn)
    assert summary.usage == usage and summary.tariff.code == "START"
    assert summary.last_invoice == await backend.last_invoice(msisdn)


async def test_no_invoice_yet(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh(invoices=0)
    assert await backend.invoices(msisdn) == []
    assert (await backend.summary(msisdn)).last_invoice is None
    with pytest.raises(NotFound):
        await backend.last_invoice(msisdn)


CODE = "123456"


async def test_payment_change_request(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh(code=CODE)
    payment = await backend.payment(msisdn)
    assert payment.method.code == "PRZELEW" and payment.pending is None
    assert payment.period_start <= clock.now.date() + timedelta(days=1)
    with pytest.raises(Conflict):
        await backend.request_payment_change(msisdn, "przelew", "sms", subscriber_code=CODE)
    with pytest.raises(InvalidInput) as info:
        await backend.request_payment_change(msisdn, "GOTOWKA", "sms", subscriber_code=CODE)
    assert info.value.field == "method"
    request = await backend.request_payment_change(msisdn, "karta", "sms", subscriber_code=CODE)
    assert request.status == "pending" and request.value == "KARTA"
    assert request.reference.startswith(f"PL/{clock.now.year}/")
    again = await backend.request_payment_change(msisdn, "KARTA", "ussd", subscriber_code=CODE)
    assert again == request
    assert (await backend.payment(msisdn)).pending == request
    newer = await backend.request_payment_change(
        msisdn, "POLECENIE_ZAPLATY", "ussd", subscriber_code=CODE
    )
    assert newer.reference != request.reference
    assert (await backend.payment(msisdn)).pending == newer
    assert (await backend.payment(msisdn)).method.code == "PRZELEW"  # until care completes it


async def test_tariff_change_effective_next_period(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    msisdn = await fresh(tariff="OPTIMUM")
    today = backend.context.today()
    with pytest.raises(NotFound):
        await backend.quote_tariff_change(msisdn, "GIGA")
    with pytest.raises(NotAllowed):
        await backend.quote_tariff_change(msisdn, "FIRMA")
    with pytest.raises(NotAllowed):
        await backend.change_tariff(msisdn, "FIRMA", "sms")
    same = await backend.quote_tariff_change(msisdn, "optimum")
    assert not same.changes
    with pytest.raises(Conflict):
        await backend.change_tariff(msisdn, "OPTIMUM", "sms")
    quote = await backend.quote_tariff_change(msisdn, "plus")
    assert quote.changes and quote.monthly_fee == 7900 and quote.fee == 0
    assert quote.effective == next_period_start(today, 1) > today
    assert await backend.pending_tariff(msisdn) is None
    request = await backend.change_tariff(msisdn, "PLUS", "sms")
    assert request.kind == "tariff" and request.effective == quote.effective
    assert await backend.pending_tariff(msisdn) == request
    assert request.reference.startswith("TA/")
    assert await backend.change_tariff(msisdn, "PLUS", "sms") == request
    assert not (await backend.quote_tariff_change(msisdn, "PLUS")).changes
    assert (await backend.tariff(msisdn)).code == "OPTIMUM"  # not before the next period
    clock.advance(days=(quote.effective - today).days + 1)
    assert (await backend.tariff(msisdn)).code == "PLUS"
    assert await backend.pending_tariff(msisdn) is None  # in force: no longer waiting
    assert (await backend.usage(msisdn)).minutes_included == 300
    # the next change settles the due request first
    await backend.change_tariff(msisdn, "MAX", "ussd")
    assert (await backend.tariff(msisdn)).code == "PLUS"


async def test_tariff_change_back_withdraws_pending(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh(tariff="OPTIMUM")
    await backend.change_tariff(msisdn, "MAX", "sms")
    back = await backend.change_tariff(msisdn, "OPTIMUM", "sms")
    assert back.status == "done" and back.value == "OPTIMUM"
    assert (await backend.quote_tariff_change(msisdn, "OPTIMUM")).changes is False


def test_periods() -> None:
    from datetime import date

    assert period_of(date(2026, 1, 9), 10) == (date(2025, 12, 10), date(2026, 1, 9))
    assert period_of(date(2026, 1, 10), 10) == (date(2026, 1, 10), date(2026, 2, 9))
    assert period_of(date(2026, 3, 1), 1) == (date(2026, 3, 1), date(2026, 3, 31))
    assert next_period_start(date(2026, 12, 31), 28) == date(2027, 1, 28)
