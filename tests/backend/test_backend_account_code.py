"""The account code (kod abonencki dla konta) of a business account, checked by the change itself.

On SQLite and PostgreSQL: an account-wide change (address, payment method) of a business account
opens only with the account code, in the change's own transaction; a number's own code is refused
for what it is and not counted; wrong account-code guesses through any of the account's numbers
count together, and that lockout is apart from each number's.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from backend.api import Backend
from backend.errors import LockedOut, NotAccountCode, WrongCode
from backend.services.accounts import CODE_ATTEMPTS, CODE_LOCKOUT

ACCOUNT_CODE = "909090"


async def _firm(fresh: Any) -> tuple[str, str]:
    """Two numbers (codes 555002 and 555003) of a new business account (code 909090)."""
    account = f"8.F{secrets.token_hex(4)}"
    first = await fresh(
        code="555002",
        account=account,
        account_kind="business",
        account_code=ACCOUNT_CODE,
        tariff="FIRMA",
    )
    second = await fresh(code="555003", account=account)
    return first, second


async def test_address_of_a_business_account_needs_the_account_code(
    backend: Backend, fresh: Any
) -> None:
    first, second = await _firm(fresh)
    new = backend.parse_address("ul. Firmowa 3, 90-001 Łódź")
    for _ in range(CODE_ATTEMPTS + 1):  # a number's own code: refused each time, never counted
        with pytest.raises(NotAccountCode):
            await backend.change_address(first, new, "sms", subscriber_code="555002")
    assert await backend.address(second) != new
    change = await backend.change_address(second, new, "ussd", subscriber_code=ACCOUNT_CODE)
    assert change.changed
    assert await backend.address(first) == new  # one address for the whole account


async def test_account_code_guesses_through_every_number_count_together(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    first, second = await _firm(fresh)
    new = backend.parse_address("ul. Zgadywana 1, 00-001 Warszawa")
    with pytest.raises(WrongCode) as wrong:
        await backend.change_address(first, new, "sms", subscriber_code="000001")
    assert (wrong.value.scope, wrong.value.attempts_left) == ("account", CODE_ATTEMPTS - 1)
    with pytest.raises(WrongCode) as wrong:
        await backend.request_payment_change(second, "KARTA", "sms", subscriber_code="000002")
    assert wrong.value.attempts_left == CODE_ATTEMPTS - 2
    with pytest.raises(LockedOut) as locked:
        await backend.change_address(first, new, "sms", subscriber_code="000003")
    assert locked.value.scope == "account"
    assert locked.value.until == clock.now + CODE_LOCKOUT
    # Locked for every number, even with the right code; the numbers' own codes still work.
    with pytest.raises(LockedOut):
        await backend.change_address(second, new, "sms", subscriber_code=ACCOUNT_CODE)
    await backend.check_subscriber_code(first, "555002")
    gate = await backend.code_gate(second, "address")
    assert (gate.scope, gate.locked_until) == ("account", clock.now + CODE_LOCKOUT)
    assert (await backend.code_gate(second, "tariff")).locked_until is None
    clock.advance(seconds=CODE_LOCKOUT.total_seconds() + 1)
    assert (await backend.code_gate(second, "address")).locked_until is None
    assert (await backend.change_address(second, new, "sms", subscriber_code=ACCOUNT_CODE)).changed
    assert (await backend.payment(first)).pending is None  # nothing filed by a wrong guess


async def test_the_account_code_does_not_open_a_numbers_change(
    backend: Backend, fresh: Any
) -> None:
    """Otherwise each number's own 3 tries would be 3 more guesses at the shared account code
    (3 × N; the right guess through a second number switched Roaming on)."""
    first, second = await _firm(fresh)
    for msisdn in (first, second):
        with pytest.raises(WrongCode) as wrong:
            await backend.activate(msisdn, "ROAMING", "sms", subscriber_code=ACCOUNT_CODE)
        assert wrong.value.scope == "number"
        assert not (await backend.service(msisdn, "ROAMING")).active
    assert (await backend.activate(first, "ROAMING", "sms", subscriber_code="555002")).changed


async def test_payment_change_of_a_business_account(backend: Backend, fresh: Any) -> None:
    first, _ = await _firm(fresh)
    with pytest.raises(NotAccountCode):
        await backend.request_payment_change(first, "KARTA", "sms", subscriber_code="555002")
    assert (await backend.payment(first)).pending is None
    request = await backend.request_payment_change(
        first, "KARTA", "sms", subscriber_code=ACCOUNT_CODE
    )
    assert (await backend.payment(first)).pending == request


async def test_an_individual_account_uses_the_numbers_code(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh(code="424242")
    assert (await backend.code_gate(msisdn, "address")).scope == "number"
    new = backend.parse_address("ul. Prywatna 2, 00-002 Warszawa")
    assert (await backend.change_address(msisdn, new, "sms", subscriber_code="424242")).changed


async def test_demo_business_account(backend: Backend) -> None:
    """DESIGN.md's demo: account 2.0000010, code 999999, numbers 48600000010 / 48600000011."""
    for msisdn, own in (("48600000010", "101010"), ("48600000011", "111011")):
        info = await backend.subscriber(msisdn)
        assert (info.account_number, info.account_kind) == ("2.0000010", "business")
        assert (await backend.code_gate(msisdn, "payment_method")).scope == "account"
        await backend.check_subscriber_code(msisdn, own)
        await backend.check_subscriber_code(msisdn, "999999", scope="account")
        with pytest.raises(NotAccountCode):
            await backend.check_subscriber_code(msisdn, own, scope="account")


async def test_account_code_over_sms_and_ussd(backend: Backend, fresh: Any) -> None:
    """The dialogs on both databases: asked for by name, a number's code refused, the account
    code accepted, over SMS from one number and USSD from the other."""
    from dialogs import build_dialogs
    from fsm.runtime import Runtime
    from fsm.store import MemoryStore
    from tests.dialogs.conftest import Phone

    first, second = await _firm(fresh)
    runtime = Runtime(MemoryStore(), build_dialogs(), backend, rate_limit=1000)
    sms = Phone(runtime, first)
    quote = await sms.sms("ADRES ul. Smsowa 1, 00-003 Warszawa")
    assert quote.endswith("Potwierdź: TAK i kod abonencki dla konta. NIE anuluje."), quote
    assert (await sms.sms("TAK 555002")).startswith("To kod abonencki numeru.")
    assert await sms.sms(f"TAK {ACCOUNT_CODE}") == (
        "Adres zmieniony na: ul. Smsowa 1, 00-003 Warszawa."
    )
    ussd = Phone(runtime, second)
    await ussd.dial("*100*1*1#")
    await ussd.ussd("1")
    assert "Podaj kod abonencki dla konta" in await ussd.ussd("ul. Ussdowa 2, 00-004 Warszawa")
    assert "To kod abonencki numeru." in await ussd.ussd("555003")
    assert await ussd.ussd(ACCOUNT_CODE) == "Adres zmieniony na: ul. Ussdowa 2, 00-004 Warszawa."
    assert str(await backend.address(first)) == "ul. Ussdowa 2, 00-004 Warszawa"
