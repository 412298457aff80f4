"""The demo business account over SMS and USSD: account-wide changes ask for the account code.

Account 2.0000010 ("Krzak Sp. z o.o.", account code 999999) holds 48600000010 (101010) and
48600000011 (111011); its address and payment method are changed only with the account code.
"""

from __future__ import annotations

import re

from backend.api import Backend
from fsm.runtime import Runtime
from tests.dialogs.conftest import Phone, phone_for

FIRST, SECOND = "48600000010", "48600000011"
ASK_ACCOUNT = "Zmiana całego konta. Potwierdź: TAK i kod abonencki dla konta. NIE anuluje."
NOT_ACCOUNT = (
    "To kod abonencki numeru. Ta zmiana dotyczy całego konta: podaj kod abonencki dla konta."
)
NEW = "ul. Nowa 1, 90-001 Łódź"


async def test_sms_address_asks_for_the_account_code_by_name(
    runtime: Runtime, backend: Backend
) -> None:
    first = phone_for(runtime, FIRST)
    assert (await first.sms(f"ADRES {NEW}")).endswith("\n" + ASK_ACCOUNT)
    assert await first.sms("TAK 101010") == NOT_ACCOUNT  # the number's own code: refused, why
    assert await first.sms("TAK 101010") == NOT_ACCOUNT  # ... and never counted
    assert await first.sms("TAK 101010") == NOT_ACCOUNT
    assert await first.sms("TAK 999999") == f"Adres zmieniony na: {NEW}."
    assert str(await backend.address(SECOND)) == NEW  # the account's one address


async def test_sms_account_code_guesses_through_both_numbers_lock_it(
    runtime: Runtime, backend: Backend
) -> None:
    first, second = phone_for(runtime, FIRST), phone_for(runtime, SECOND)
    assert (await first.sms("PLATNOSC ZMIEN KARTA")).endswith(ASK_ACCOUNT)
    assert await first.sms("TAK 000001") == ("Błędny kod abonencki dla konta. Pozostałe próby: 2.")
    await second.sms("PLATNOSC ZMIEN KARTA")
    assert await second.sms("TAK 000002") == ("Błędny kod abonencki dla konta. Pozostałe próby: 1.")
    locked = await first.sms("TAK 000003")
    assert locked.startswith("Kod abonencki dla konta zablokowany do "), locked
    # Through the other number: told at once, no code asked for.
    assert re.fullmatch(
        r"Kod abonencki dla konta zablokowany do \d\d:\d\d \d\d\.\d\d\.\d{4}\. "
        r"Spróbuj ponownie po tym czasie\.",
        await second.sms(f"ADRES {NEW}"),
    )
    # The numbers' own codes keep their own lockouts: a change of one number still works.
    assert (await second.sms("WLACZ NOCE")).endswith("NIE anuluje.")
    assert (await second.sms("TAK 111011")).startswith("Usługa Darmowe noce włączona")
    assert (await backend.payment(FIRST)).pending is None


async def test_ussd_address_with_the_account_code(runtime: Runtime, backend: Backend) -> None:
    phone = Phone(runtime, SECOND)
    await phone.dial("*100*1*1#")
    await phone.ussd("1")
    quote = await phone.ussd(NEW)
    assert "Zmiana całego konta firmy. Podaj kod abonencki dla konta:" in quote, quote
    assert NOT_ACCOUNT in await phone.ussd("111011")
    assert not phone.ended
    assert await phone.ussd("999999") == f"Adres zmieniony na: {NEW}."
    assert str(await backend.address(FIRST)) == NEW


async def test_an_individual_number_confirms_its_address_with_its_code(phone: Phone) -> None:
    reply = await phone.sms(f"ADRES {NEW}")
    assert reply.endswith("TAK i kod abonencki, np. TAK 123456. NIE anuluje."), reply
    assert await phone.sms("TAK 111111") == f"Adres zmieniony na: {NEW}."
