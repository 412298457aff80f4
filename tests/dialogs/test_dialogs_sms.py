"""Every SMS command as a conversation: text in → reply out, on the real backend and both stores."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import time_machine

from backend.api import Backend
from dialogs import DialogSettings, build_dialogs
from fsm.runtime import Inbound, Runtime, TurnUnavailable
from gateway.sms.text import sms_parts
from tests.dialogs.conftest import Phone, phone_for
from tests.fsm.conftest import StoreCase

ASK = "Potwierdź: TAK i kod abonencki, np. TAK 123456. NIE anuluje."
ASK_EN = "Confirm: YES and subscriber code, e.g. YES 123456. NO cancels."


def today(backend: Backend) -> str:
    return backend.context.today().strftime("%d.%m.%Y")


async def test_help_and_unknown(phone: Phone) -> None:
    help_pl = await phone.sms("POMOC")
    assert help_pl.startswith("Komendy: INFO PAKIET HASLO FAKTURA FAKTURY PLATNOSC TARYFA")
    assert (await phone.sms("help")).startswith("Commands: INFO USAGE PASSWORD")
    assert await phone.sms("kup mi kawę") == (
        "Nie znamy komendy „kup”. Lista komend: POMOC. Menu: *100#."
    )
    # Control characters and invisible marks are never echoed back.
    assert await phone.sms("ku\x00p\u200b\x1b mi") == (
        "Nie znamy komendy „kup”. Lista komend: POMOC. Menu: *100#."
    )
    # Nothing (or only spaces, or only invisible marks) gets the help, not „”.
    for empty in ("", "   ", "\u200b \n"):
        assert await phone.sms(empty) == help_pl
    assert await phone.sms("TAK 111111") == "Nie ma nic do potwierdzenia. Lista komend: POMOC."
    assert await phone.sms("no") == "There is nothing to confirm. Commands: HELP."


async def test_info_usage_invoices(phone: Phone) -> None:
    info = await phone.sms("info")
    assert info.startswith("Nr 600 000 001, konto 1.0000001, taryfa Idea Optimum 120. Faktura ")
    assert re.search(r"Faktura \d+,\d\d zł, termin \S+, (zapłacona|do zapłaty)\.", info), info
    assert info.endswith("Zostało: 73 min, 62 SMS.")
    assert re.fullmatch(
        r"Pakiet do \d\d\.\d\d\.\d{4}: minuty 47/120 \(zostało 73\), SMS 38/100 \(zostało 62\)\.",
        await phone.sms("PAKIET"),
    )
    assert "minutes 47/120 (73 left), SMS 38/100 (62 left)." in await phone.sms("usage")
    assert re.fullmatch(
        r"Faktura \S+ za \d\d\.\d\d\.\d{4}-\d\d\.\d\d\.\d{4}: \d+,\d\d zł, termin "
        r"\d\d\.\d\d\.\d{4}, (zapłacona|do zapłaty)\.",
        await phone.sms("Faktura"),
    )
    pages = [(await phone.sms(f"FAKTURY {n}")).split("\n") for n in ("", "2", "3")]
    assert [p[0] for p in pages] == ["Faktury (1/3):", "Faktury (2/3):", "Faktury (3/3):"]
    assert [p[-1] for p in pages[:2]] == ["Starsze: FAKTURY 2", "Starsze: FAKTURY 3"]
    months = pages[0][1:5] + pages[1][1:5] + pages[2][1:]
    assert len(months) == 12 and len(set(months)) == 12
    assert all(re.fullmatch(r"\d\d\.\d{4}: \d+,\d\d zł (zapł\.|do zapł\.)", x) for x in months)
    assert await phone.sms("FAKTURY 4") == (
        "Nie ma takiej strony. Faktury mają strony 1-3, np. FAKTURY 2."
    )
    assert await phone.sms("FAKTURY x") == (
        "Strona to numer, np. FAKTURY 2 albo PROFIT HISTORIA 2."
    )
    assert (await phone.sms("INVOICES")).startswith("Invoices (1/3):\n")


async def test_unknown_number_is_told_politely(runtime: Runtime) -> None:
    stranger = phone_for(runtime, "48699999999")
    assert await stranger.sms("INFO") == "Ten numer nie jest abonentem Idea. Zadzwoń na *22."
    assert await stranger.sms("USAGE") == "This number is not an Idea subscriber. Please call *22."


async def test_password_reply_carries_a_working_password(phone: Phone, backend: Backend) -> None:
    reply = await phone.sms("Hasło")
    found = re.fullmatch(
        r"Hasło tymczasowe do Idea24 on-line: (\S{8})\n"
        r"Ważne 10 min, jednorazowe\. Nie podawaj go nikomu\.",
        reply,
    )
    assert found, reply
    assert await backend.verify_temp_password("48600000001", found.group(1)) is True
    english = await phone.sms("PASSWORD")
    assert english.startswith("Temporary password for Idea24 on-line: ")
    assert "Valid 10 min" in english


async def test_password_rate_limit_is_worded(phone: Phone) -> None:
    for _ in range(3):
        await phone.sms("HASLO")
    assert re.fullmatch(r"Za dużo prób\. Spróbuj ponownie za \d+ min\.", await phone.sms("HASLO"))


async def test_services_list_and_details(phone: Phone, runtime: Runtime) -> None:
    assert await phone.sms("USLUGI") == (
        "Twoje usługi:\n3IJA Trzy i Ja\nMMS MMS\nOpis: USLUGA KOD. Wyłączenie: WYLACZ KOD."
    )
    everything = await phone.sms("usługi wszystkie")
    assert everything.startswith("Usługi: 3IJA (wł.), PRZYJACIEL, ROAMING, ")
    assert everything.endswith(", NOCE. Opis: USLUGA KOD. Włączenie: WLACZ KOD.")
    # One line of description and the service's page; the status agrees with the name.
    assert await phone.sms("USLUGA noce") == (
        "Darmowe noce: wyłączone, 5,00 zł/mies., aktywacja 10,00 zł. Rozmowy w Idei w godz. "
        "22-6 bez opłat. idea24.example.pl/uslugi/noce\nWłączenie: WLACZ NOCE"
    )
    assert (await phone.sms("USLUGA ROAMING")).startswith("Roaming: wyłączony, 0,00 zł/mies. ")
    assert (await phone.sms("USLUGA MMS")).endswith("\nWyłączenie: WYLACZ MMS")
    assert (await phone.sms("SERVICE ROAMING")).startswith("Roaming: off, 0,00 zł/month. ")
    assert await phone.sms("USLUGA") == "Podaj kod usługi. Przykład: USLUGA 3IJA"
    assert await phone.sms("USLUGA KAWA") == "Nie ma usługi o kodzie KAWA. Lista: USLUGI WSZYSTKIE"
    assert await phone_for(runtime, "48600000003").sms("USLUGI") == (
        "Nie masz usług dodatkowych. Lista: USLUGI WSZYSTKIE"
    )


async def test_activate_with_fee_wrong_code_then_right(phone: Phone, backend: Backend) -> None:
    day = today(backend)
    assert await phone.sms("WŁĄCZ  noce") == (
        f"Włączenie usługi Darmowe noce: opłata 10,00 zł + 5,00 zł/mies., od {day}.\n" + ASK
    )
    assert await phone.sms("TAK 000000") == "Błędny kod abonencki. Pozostałe próby: 2."
    assert await phone.sms("TAK") == "Dopisz kod abonencki, np. TAK 123456. NIE anuluje."
    assert await phone.sms("hmm?") == ASK
    assert await phone.sms("tak 111 111") == (
        f"Usługa Darmowe noce włączona od {day}. Opłata 10,00 zł."
    )
    assert (await backend.service("48600000001", "NOCE")).active
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")


async def test_english_on_and_yes(phone: Phone, backend: Backend) -> None:
    day = today(backend)
    assert await phone.sms("on noce") == (
        f"Switching on Darmowe noce: fee 10,00 zł + 5,00 zł/month, from {day}.\n" + ASK_EN
    )
    assert await phone.sms("YES 111111") == f"Darmowe noce is on from {day}. Fee 10,00 zł."


async def test_already_on_and_usage_errors(phone: Phone) -> None:
    assert await phone.sms("WLACZ MMS") == "Usługa MMS jest już włączona."
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")
    assert await phone.sms("WLACZ") == "Podaj kod usługi. Przykład: WLACZ 3IJA"
    assert await phone.sms("OFF") == "Give the service code. Example: OFF 3IJA"
    assert await phone.sms("WYLACZ NOCE") == "Usługa Darmowe noce jest już wyłączona."


async def test_cancel_and_read_in_between(phone: Phone, backend: Backend) -> None:
    assert (await phone.sms("WYLACZ MMS")).startswith("Wyłączenie usługi MMS: opłata 0,00 zł")
    assert await phone.sms("nie") == "Anulowano, nic nie zmieniono."
    assert (await backend.service("48600000001", "MMS")).active
    assert (await phone.sms("WLACZ NOCE")).endswith(ASK)
    assert (await phone.sms("PAKIET")).startswith("Pakiet do "), "a read-only command runs"
    assert await phone.sms("bzdura") == ASK  # not a command: the code is asked for again
    assert (await phone.sms("TAK 111111")).startswith("Usługa Darmowe noce włączona od ")
    assert (await backend.service("48600000001", "NOCE")).active


async def test_a_new_change_replaces_the_pending_one_and_says_so(
    phone: Phone, backend: Backend
) -> None:
    await phone.sms("WLACZ NOCE")
    replaced = await phone.sms("WYLACZ MMS")
    assert replaced.startswith("Poprzednia zmiana (włączenie NOCE) anulowana.\nWyłączenie usługi")
    assert (await phone.sms("TAK 111111")).startswith("Usługa MMS wyłączona")
    assert not (await backend.service("48600000001", "NOCE")).active
    first = await phone.sms("WLACZ NOCE")
    assert await phone.sms("WLACZ NOCE") == first  # the same change again: quoted again


async def test_a_replacing_prompt_says_so_without_costing_a_part(
    case: StoreCase, backend: Backend
) -> None:
    """Counted as the server counts (its default policy): the note naming the replaced change
    where it fits, else the short note with the short request for the code; never a part more."""
    counted = DialogSettings(sms_parts=partial(sms_parts, policy="auto"))
    phone = Phone(Runtime(case.store, build_dialogs(counted), backend))
    await phone.sms("PROFIT DOLACZ")
    named = await phone.sms("WYLACZ MMS")
    assert named.startswith("Poprzednia zmiana (Profit) anulowana.\nWyłączenie usługi MMS")
    assert named.endswith(ASK) and sms_parts(named, policy="auto") == 1
    short = await phone.sms("ADRES al. Marszałka Józefa Piłsudskiego 112/14, 05-520 Konstancin")
    assert short.startswith("Poprzednia zmiana anulowana.\nNowy adres: al. Marszałka")
    assert short.endswith("\nTAK i kod abonencki potwierdza, NIE anuluje.")
    assert sms_parts(short, policy="auto") == 1
    assert (await phone.sms("TAK 111111")).startswith("Adres zmieniony")
    assert (await backend.service("48600000001", "MMS")).active  # the replaced change: not done


async def test_tak_without_six_digits_uses_no_attempt(phone: Phone, backend: Backend) -> None:
    await phone.sms("WLACZ NOCE")
    for text in ("TAK 1234", "TAK abcdef", "TAK 1111111", "TAK 12-34-56"):
        assert await phone.sms(text) == (
            "Kod abonencki to 6 cyfr, np. TAK 123456. Ta próba się nie liczy."
        )
    assert await phone.sms("TAK 000000") == "Błędny kod abonencki. Pozostałe próby: 2."
    assert (await phone.sms("TAK 111 111")).startswith("Usługa Darmowe noce włączona")


async def test_a_change_that_cannot_work_is_refused_before_any_code(phone: Phone) -> None:
    assert await phone.sms("TARYFA OPTIMUM") == "To już jest Twoja taryfa."
    assert await phone.sms("ADRES ul. Długa 5/3, 00-950 Warszawa") == (
        "To już jest Twój adres korespondencyjny."
    )
    assert (await phone.sms("TARYFA FIRMA")).startswith("Ta taryfa jest")
    assert (await phone.sms("WLACZ MMS")).startswith("Usługa MMS jest już")
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")


async def test_wrong_codes_lock_the_code(phone: Phone, backend: Backend) -> None:
    await phone.sms("WLACZ NOCE")
    assert await phone.sms("TAK 000001") == "Błędny kod abonencki. Pozostałe próby: 2."
    assert await phone.sms("TAK 000002") == "Błędny kod abonencki. Pozostałe próby: 1."
    locked = await phone.sms("TAK 000003")
    assert re.fullmatch(
        r"Kod abonencki zablokowany do \d\d:\d\d \d\d\.\d\d\.\d{4} po błędnych próbach\. "
        r"Zmiana anulowana\.",
        locked,
    )
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")
    # Locked out: said at once, until when, without asking for a code.
    assert re.fullmatch(
        r"Kod abonencki zablokowany do \d\d:\d\d \d\d\.\d\d\.\d{4}\. "
        r"Spróbuj ponownie po tym czasie\.",
        await phone.sms("WLACZ NOCE"),
    )
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")
    assert not (await backend.service("48600000001", "NOCE")).active


async def test_three_numbers(phone: Phone, backend: Backend) -> None:
    assert await phone.sms("3ija") == (
        "Trzy i Ja: 601 234 567, 602 345 678, 603 456 789.\n"
        "Zmiana: 3IJA N1 N2 N3, np. 3IJA 601234567 602345678 603456789"
    )
    assert await phone.sms("3IJA 601234567") == (
        "Podaj trzy numery (podano: 1). Przykład: 3IJA 601234567 602345678 603456789"
    )
    assert await phone.sms("3IJA 601 23") == (
        "60123: 5 cyfr, za krótki numer. Numer ma 9 cyfr, np. 601 234 567."
    )
    # Numbers glued together are reported as what they are.
    assert await phone.sms("3IJA 5011111 502222222") == (
        "5011111: 7 cyfr, za krótki numer. Numer ma 9 cyfr, np. 601 234 567."
    )
    assert await phone.sms("3IJA 6011111222 602222333 603333444") == (
        "6011111222: 10 cyfr, za długi numer. Numer ma 9 cyfr, np. 601 234 567."
    )
    assert await phone.sms("3IJA 601111222 +44 7700 900123 603333444") == (
        "+447700900123 to numer zagraniczny: wybrać można tylko polskie numery."
    )
    assert await phone.sms("FRIENDS 601111222 +44 7700 900123 603333444") == (
        "+447700900123 is a foreign number: only Polish numbers can be chosen."
    )
    assert await phone.sms("3IJA 600000001 602222333 603333444") == (
        "Nie możesz podać własnego numeru (600 000 001)."
    )
    quote = await phone.sms("3IJA +48 601-111-222  602 333 444 48603555666")
    assert quote.startswith(
        "Trzy i Ja: nowe numery 601 111 222, 602 333 444, 603 555 666. Opłata 3,00 zł"
    )
    assert quote.endswith(ASK)
    assert (await phone.sms("TAK 111111")).startswith("Numery zmienione od ")
    assert await phone.sms("3IJA 601111222 602333444 603555666") == "Te numery są już ustawione."
    assert (await backend.favourites("48600000001")).three == (
        "48601111222",
        "48602333444",
        "48603555666",
    )


async def test_friend(runtime: Runtime, backend: Backend) -> None:
    anna = phone_for(runtime, "48600000002")
    assert (await anna.sms("PRZYJACIEL")).startswith("Przyjaciel: 604 567 890.\n")
    assert (await anna.sms("friend 605-000-111")).startswith(
        "Przyjaciel: new number 605 000 111. Fee 2,00 zł"
    )
    assert (await anna.sms("YES 222222")).startswith("Number changed from ")
    assert (await backend.favourites("48600000002")).friend == "48605000111"
    assert (await anna.sms("PRZYJACIEL 605000111")) == "Ten numer jest już ustawiony."
    await anna.sms("PRZYJACIEL 606000111")
    assert (await anna.sms("TAK 222222")).startswith("Numer zmieniony od ")
    assert await anna.sms("PRZYJACIEL 1 2") == (
        "12: 2 cyfry, za krótki numer. Numer ma 9 cyfr, np. 601 234 567."
    )
    # Not switched on: says how to switch it on.
    assert await phone_for(runtime, "48600000003").sms("PRZYJACIEL") == (
        "Usługa Przyjaciel jest wyłączona.\nWłączenie: WLACZ PRZYJACIEL"
    )


async def test_address_change(phone: Phone, backend: Backend) -> None:
    assert (await phone.sms("ADRES")).startswith(
        "Adres korespondencyjny: ul. Długa 5/3, 00-950 Warszawa.\n"
    )
    assert await phone.sms("ADRES ul. Krótka 7, 31-019 Kraków") == (
        "Nowy adres: ul. Krótka 7, 31-019 Kraków.\n" + ASK
    )
    assert await phone.sms("TAK 111111") == "Adres zmieniony na: ul. Krótka 7, 31-019 Kraków."
    assert str(await backend.address("48600000001")) == "ul. Krótka 7, 31-019 Kraków"
    wrong = await phone.sms("ADRES Kraków")
    assert wrong.endswith("Przykład: ul. Długa 5/3, 00-950 Warszawa"), wrong


async def test_tariff(phone: Phone) -> None:
    assert await phone.sms("TARYFA") == (
        "Taryfa: Idea Optimum 120, 49,00 zł/mies., 120 min, 100 SMS.\n"
        "Inne: START 29,00, PLUS 79,00, MAX 129,00 zł/mies. Zmiana: TARYFA KOD"
    )
    quote = await phone.sms("taryfa idea plus 300")
    assert re.fullmatch(
        r"Zmiana taryfy na Idea Plus 300 od (\S+): 79,00 zł/mies\., opłata 0,00 zł\.\n" + ASK,
        quote,
    )
    effective = quote.split(" od ")[1].split(":")[0]
    assert (await phone.sms("TAK 111111")).startswith("Przyjęliśmy zmianę taryfy (")
    # The change waiting for the next period is shown, with its date.
    assert await phone.sms("TARYFA") == (
        f"Taryfa: Idea Optimum 120, 49,00 zł/mies., 120 min, 100 SMS. Od {effective}: "
        "Idea Plus 300.\nInne: START 29,00, MAX 129,00 zł/mies. Zmiana: TARYFA KOD"
    )
    assert await phone.sms("TARYFA KAWA") == "Nie ma taryfy „KAWA”. Przykład: TARYFA START"
    assert await phone.sms("TARYFA FIRMA") == "Ta taryfa jest tylko dla firm."


async def test_payment(phone: Phone) -> None:
    assert await phone.sms("PŁATNOŚĆ") == (
        "Forma płatności: przelew. Okres rozliczeniowy "
        + (await phone.sms("PLATNOSC")).split("Okres rozliczeniowy ")[1]
    )
    assert (await phone.sms("PLATNOSC")).endswith(". Zmiana: PLATNOSC ZMIEN.")
    # Methods by number or plain words, never an identifier with an underscore.
    assert await phone.sms("PLATNOSC ZMIEN") == (
        "Nowa forma płatności: 2 polecenie zapłaty, 3 karta płatnicza. Wyślij np. PLATNOSC ZMIEN 2"
    )
    quote_2 = "Zmiana formy płatności na: polecenie zapłaty. BOK wyśle formularz do podpisu.\n"
    assert await phone.sms("PLATNOSC ZMIEN 2") == quote_2 + ASK
    assert await phone.sms("NIE") == "Anulowano, nic nie zmieniono."
    assert await phone.sms("płatność zmień polecenie zapłaty") == quote_2 + ASK
    assert await phone.sms("NIE") == "Anulowano, nic nie zmieniono."
    assert await phone.sms("PLATNOSC ZMIEN 1") == await phone.sms("PLATNOSC ZMIEN")
    assert await phone.sms("PLATNOSC ZMIEN karta") == (
        "Zmiana formy płatności na: karta płatnicza. BOK wyśle formularz do podpisu.\n" + ASK
    )
    assert re.fullmatch(
        r"Przyjęliśmy wniosek \S+\. Formularz do podpisu wyślemy pocztą\.",
        await phone.sms("TAK 111111"),
    )
    assert "Wniosek o zmianę " in await phone.sms("PLATNOSC")
    assert await phone.sms("PLATNOSC COS") == "Nie rozumiemy. Wyślij PLATNOSC albo PLATNOSC ZMIEN."


async def test_order_letter_walk(phone: Phone) -> None:
    types = await phone.sms("ZLECENIE")
    assert types.startswith("Zlecenie - odpisz numerem rodzaju:\n1 Duplikat faktury\n")
    assert await phone.sms("9") == "Odpisz numerem od 1 do 5 albo NIE, aby anulować."
    assert await phone.sms("2") == "Podaj dane zlecenia (np. numer faktury, okres):"
    assert await phone.sms("okres 10.2026") == "Opisz krótko sprawę:"
    assert await phone.sms("ok") == "Opis jest za krótki. Opisz sprawę w kilku słowach:"
    assert await phone.sms("Proszę o biling szczegółowy") == (
        "Wyślemy do BOK zlecenie: Biling szczegółowy.\n" + ASK
    )
    assert re.fullmatch(
        r"Zlecenie przyjęte, numer ZL/\d{4}/\d+\. Status: przyjęte\.",
        await phone.sms("TAK 111111"),
    )


async def test_complaint_in_english_and_cancel(phone: Phone) -> None:
    assert (await phone.sms("COMPLAINT")).startswith(
        "Complaint - reply with the type's number:\n1 Invoice\n2 Call quality"
    )
    assert await phone.sms("1") == (
        "Give the complaint details (e.g. invoice number, date, amount):"
    )
    assert await phone.sms("NO") == "Cancelled, nothing was changed."
    await phone.sms("REKLAMACJA")
    assert (await phone.sms("PAKIET")).startswith("Pakiet do "), "a command leaves the list"
    assert (await phone.sms("2")).startswith("Nie znamy komendy"), "the letter was abandoned"
    await phone.sms("REKLAMACJA")
    await phone.sms("2")
    await phone.sms("FV/1/2026, 12.11.2026")
    assert (await phone.sms("Rozmowy się urywają")).endswith(ASK)
    assert re.fullmatch(r"Reklamacja przyjęta, numer RK/\d{4}/\d+\. Status: przyjęte\.",
                        await phone.sms("TAK 111111"))  # fmt: skip


async def test_profit(runtime: Runtime, phone: Phone) -> None:
    anna = phone_for(runtime, "48600000002")
    assert re.fullmatch(
        r"Program Profit: \d+ punktów \(od \d\d\.\d\d\.\d{4}\)\. Historia: PROFIT HISTORIA\.",
        await anna.sms("PROFIT"),
    )
    history = (await anna.sms("profit historia")).split("\n")
    assert history[0] == "Historia Profit (1/4):" and history[-1] == "Dalej: PROFIT HISTORIA 2"
    assert all(re.fullmatch(r"\d\d\.\d\d\.\d{4} [+-]\d+ \S+", x) for x in history[1:-1])
    last = (await anna.sms("PROFIT HISTORIA 4")).split("\n")
    assert last[0] == "Historia Profit (4/4):" and last[-1].endswith(" +100 powitalne")
    assert await anna.sms("PROFIT DOLACZ") == "Już należysz do Programu Profit."
    assert await phone.sms("PROFIT") == "Nie należysz do Programu Profit. Dołącz: PROFIT DOLACZ."
    assert await phone.sms("PROFIT DOŁĄCZ") == (
        "Dołączenie do Programu Profit: bez opłat, punkty za każdą fakturę.\n" + ASK
    )
    assert await phone.sms("TAK 111111") == (
        "Witamy w Programie Profit! Na start masz 100 punktów."
    )
    assert (await phone.sms("PROFIT")).startswith("Program Profit: 100 punktów (od ")
    assert await phone.sms("PROFIT X") == "Wyślij PROFIT, PROFIT DOLACZ albo PROFIT HISTORIA."


async def test_pending_confirmation_times_out(case: StoreCase, backend: Backend) -> None:
    short = DialogSettings(sms_dialog_timeout=0.3, ussd_timeout=0.3, sms_pending_valid=0.2)
    phone = Phone(Runtime(case.store, build_dialogs(short), backend))
    assert (await phone.sms("WLACZ NOCE")).endswith(ASK)
    await case.advance(0.45)
    assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")
    assert not (await backend.service("48600000001", "NOCE")).active


async def test_a_late_tak_says_which_change_expired(phone: Phone, backend: Backend) -> None:
    with time_machine.travel(datetime.now(UTC), tick=False) as travel:
        await phone.sms("WLACZ NOCE")
        travel.shift(timedelta(minutes=9, seconds=59))
        assert (await phone.sms("PAKIET")).startswith("Pakiet do ")  # still pending
        travel.shift(timedelta(seconds=2))
        assert await phone.sms("TAK 111111") == (
            "Zmiana (włączenie NOCE) wygasła po 10 min bez TAK. Wyślij ją ponownie."
        )
        assert (await phone.sms("TAK 111111")).startswith("Nie ma nic do potwierdzenia")
    assert not (await backend.service("48600000001", "NOCE")).active


async def test_two_messages_at_once_in_order(runtime: Runtime, backend: Backend) -> None:
    first = asyncio.create_task(runtime.turn(Inbound("48600000001", "sms", "WLACZ NOCE")))
    second = asyncio.create_task(runtime.turn(Inbound("48600000001", "sms", "TAK 111111")))
    one, two = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert one[0].text.endswith(ASK)
    assert two[0].text.startswith("Usługa Darmowe noce włączona od ")
    assert (await backend.service("48600000001", "NOCE")).active


async def test_turn_failing_half_way_keeps_the_pending_change(
    phone: Phone, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await phone.sms("WLACZ NOCE")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug half way through")

    monkeypatch.setattr(backend, "activate", broken)
    assert await phone.sms("TAK 111111") == (
        "Przepraszamy, wystąpił błąd. Spróbuj ponownie za chwilę lub zadzwoń na *22."
    )
    monkeypatch.undo()
    assert not (await backend.service("48600000001", "NOCE")).active
    assert (await phone.sms("TAK 111111")).startswith("Usługa Darmowe noce włączona od ")


async def test_lost_database_connection_is_not_answered_but_offered_again(
    phone: Phone, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passing infrastructure failure raises TurnUnavailable (the gateway answers the SMSC
    with a temporary error and the same MO comes again) and keeps the pending change."""
    await phone.sms("WLACZ NOCE")

    async def gone(*args: object, **kwargs: object) -> None:
        raise ConnectionError("database went away")

    monkeypatch.setattr(backend, "activate", gone)
    with pytest.raises(TurnUnavailable):
        await phone.sms("TAK 111111")
    monkeypatch.undo()
    assert (await phone.sms("TAK 111111")).startswith("Usługa Darmowe noce włączona od ")


async def test_rate_limit_on_turns(case: StoreCase, backend: Backend) -> None:
    phone = Phone(Runtime(case.store, build_dialogs(), backend, rate_limit=3, rate_window=60))
    for _ in range(3):
        await phone.sms("PAKIET")
    assert await phone.sms("PAKIET") == (
        "Za dużo wiadomości w krótkim czasie. Spróbuj ponownie za kilka minut."
    )
    # One "too many messages" SMS per window, then silence (an auto-responder loop stops).
    assert await phone.runtime.turn(Inbound(phone.msisdn, "sms", "PAKIET")) == []
    english = Phone(phone.runtime, "48600000002")
    for _ in range(3):
        await english.sms("USAGE")
    assert await english.sms("USAGE") == (
        "Too many messages in a short time. Please try again in a few minutes."
    )
