"""The *100# menu as conversations, and one walk over the whole tree in Polish and English."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from backend.api import Backend
from backend.models import Subscriber
from dialogs import DialogSettings, build_dialogs
from dialogs.ussd import SCREEN_LIMIT, UssdDialog
from fsm.runtime import Inbound, Runtime
from tests.dialogs.conftest import Phone, phone_for
from tests.fsm.conftest import StoreCase

ROOT = (
    "Idea24\n1 Konto\n2 Pakiet\n3 Usługi\n4 Trzy i Ja / Przyjaciel\n5 Płatności i faktury\n"
    "6 Taryfa\n7 Hasło do Idea24\n8 Profit\n9 Kontakt z BOK"
)
NAV = "0 Wstecz 00 Menu"
ASK_CODE = "Podaj kod abonencki, aby potwierdzić:"


async def set_language(backend: Backend, msisdn: str, lang: str) -> None:
    async with backend.sessionmaker.begin() as session:
        await session.execute(
            update(Subscriber).where(Subscriber.msisdn == msisdn).values(language=lang)
        )


async def test_root_navigation_and_hint(phone: Phone) -> None:
    assert await phone.dial() == ROOT
    assert not phone.ended
    assert await phone.ussd("x") == "Wybierz numer z menu.\n" + ROOT
    assert await phone.ussd("  ") == "Wybierz numer z menu.\n" + ROOT, "nothing: the same hint"
    assert await phone.ussd("0") == "Wybierz numer z menu.\n" + ROOT, "no back from the root"
    usage = await phone.ussd("2")
    assert re.fullmatch(
        r"Pakiet do \d\d\.\d\d\.\d{4}: minuty 47/120 \(zostało 73\), SMS 38/100 \(zostało 62\)\.\n"
        + NAV,
        usage,
    )
    assert await phone.ussd("5") == "Wybierz numer z menu.\n" + usage
    assert await phone.ussd("0") == ROOT
    await phone.ussd("3")
    await phone.ussd("1")
    assert await phone.ussd("00") == ROOT


async def test_account_says_whether_the_last_invoice_is_paid(phone: Phone) -> None:
    assert re.fullmatch(
        r"Nr 600 000 001, konto 1\.0000001, taryfa Idea Optimum 120\. Faktura \d+,\d\d zł, "
        r"termin \d\d\.\d\d\.\d{4}, (zapłacona|do zapłaty)\. Zostało: 73 min, 62 SMS\.\n"
        r"1 Adres\n" + NAV,
        await phone.dial("*100*1#"),
    )


async def test_shortcuts(phone: Phone) -> None:
    assert (await phone.dial("*100*2#")).startswith("Pakiet do ")
    assert await phone.dial("*100*3*1#") == (f"Moje usługi:\n1 Trzy i Ja (wł.)\n2 MMS (wł.)\n{NAV}")
    assert await phone.dial("*100*9*1#") == (
        "Zlecenie - rodzaj:\n1 Duplikat faktury\n2 Biling szczegółowy\n3 Blokada karty SIM\n"
        f"4 Wymiana karty SIM\n5 Cesja umowy\n{NAV}"
    )
    assert await phone.dial("*100*3*7#") == (
        f"Wybierz numer z menu.\nUsługi\n1 Moje usługi\n2 Wszystkie usługi\n{NAV}"
    ), "a shortcut stops at the first answer that is not on the menu"
    assert await phone.ussd("0") == ROOT


async def test_paging_with_99(phone: Phone) -> None:
    first = await phone.dial("*100*3*2#")
    assert first.startswith("Wszystkie usługi:\n1 Trzy i Ja (wł.)\n")
    assert first.endswith("99 Dalej " + NAV)
    second = await phone.ussd("99")
    assert second == f"Wszystkie usługi:\n8 Pakiet 100 SMS\n9 Darmowe noce\n{NAV}"
    assert await phone.ussd("99") == f"To już koniec listy.\n{second}"
    assert (await phone.ussd("9")).startswith("Darmowe noce: wyłączone, 5,00 zł/mies.")
    assert await phone.ussd("0") == first, "back to the list starts at its first page"


async def test_activate_service_fee_code_done(phone: Phone, backend: Backend) -> None:
    day = backend.context.today().strftime("%d.%m.%Y")
    await phone.dial("*100*3*2#")
    # The service's one-line description; the option by its state: Włącz.
    assert await phone.ussd("9") == (
        "Darmowe noce: wyłączone, 5,00 zł/mies., aktywacja 10,00 zł. Rozmowy w Idei w godz. "
        f"22-6 bez opłat.\n1 Włącz\n{NAV}"
    )
    confirm = (
        f"Włączenie usługi Darmowe noce: opłata 10,00 zł + 5,00 zł/mies., od {day}.\n"
        f"{ASK_CODE}\n{NAV}"
    )
    assert await phone.ussd("1") == confirm
    assert await phone.ussd("000000") == (
        f"Błędny kod abonencki. Pozostałe próby: 2.\n{ASK_CODE}\n{NAV}"
    )
    assert not phone.ended
    assert await phone.ussd("111111") == f"Usługa Darmowe noce włączona od {day}. Opłata 10,00 zł."
    assert phone.ended
    assert (await backend.service("48600000001", "NOCE")).active
    assert (await phone.ussd("1")).startswith("Sesja wygasła"), "the session ended"
    assert (await phone.dial("*100*3*2*9#")).endswith(f"\n1 Wyłącz\n{NAV}"), "now on: Wyłącz"


async def test_deactivate_from_my_services_and_back_out(phone: Phone, backend: Backend) -> None:
    await phone.dial("*100*3*1*2*1#")
    assert await phone.ussd("0") == (
        f"MMS: włączony, 0,00 zł/mies. Wysyłanie i odbieranie wiadomości MMS.\n1 Wyłącz\n{NAV}"
    )
    assert (await phone.ussd("1")).startswith("Wyłączenie usługi MMS: opłata 0,00 zł")
    assert (await phone.ussd("111111")).startswith("Usługa MMS wyłączona od ")
    assert not (await backend.service("48600000001", "MMS")).active


async def test_locked_code_ends_the_session(phone: Phone) -> None:
    await phone.dial("*100*8*2#")
    assert "Kod abonencki to 6 cyfr" in await phone.ussd("12")  # not a code: no attempt used
    await phone.ussd("000001")
    await phone.ussd("000002")
    locked = await phone.ussd("000003")
    assert locked.startswith("Kod abonencki zablokowany do ")
    assert phone.ended


async def test_address_change(phone: Phone, backend: Backend) -> None:
    assert await phone.dial("*100*1*1#") == (
        f"Adres korespondencyjny: ul. Długa 5/3, 00-950 Warszawa.\n1 Zmień\n{NAV}"
    )
    assert await phone.ussd("1") == (
        f"Podaj nowy adres, np. ul. Długa 5/3, 00-950 Warszawa:\n{NAV}"
    )
    wrong = await phone.ussd("gdzieś")
    assert wrong.endswith(f"Przykład: ul. Długa 5/3, 00-950 Warszawa\nPodaj nowy adres, np. "
                          f"ul. Długa 5/3, 00-950 Warszawa:\n{NAV}")  # fmt: skip
    assert await phone.ussd("ul. Krótka 7, 31-019 Kraków") == (
        f"Nowy adres: ul. Krótka 7, 31-019 Kraków.\n{ASK_CODE}\n{NAV}"
    )
    assert await phone.ussd("111111") == "Adres zmieniony na: ul. Krótka 7, 31-019 Kraków."
    assert str(await backend.address("48600000001")) == "ul. Krótka 7, 31-019 Kraków"


async def test_three_numbers(phone: Phone, backend: Backend) -> None:
    assert await phone.dial("*100*4*1#") == (
        f"Trzy i Ja: 601 234 567, 602 345 678, 603 456 789.\n1 Zmień\n{NAV}"
    )
    ask = f"Podaj 3 numery oddzielone spacją:\n{NAV}"
    assert await phone.ussd("1") == ask
    # Every fixable input is asked again on the same screen, with the reason and no SMS syntax.
    for answer, reason in [
        ("601111222", "Podaj trzy numery (podano: 1)."),
        ("5011111 502222222",
         "5011111: 7 cyfr, za krótki numer. Numer ma 9 cyfr, np. 601 234 567."),
        ("601111222 +44 7700 900123 603555666",
         "+447700900123 to numer zagraniczny: wybrać można tylko polskie numery."),
        ("601111222 601111222 603555666", "Numer 601 111 222 podano dwa razy."),
        ("600000001 602333444 603555666", "Nie możesz podać własnego numeru (600 000 001)."),
        ("601234567 602345678 603456789", "Te numery są już ustawione."),
    ]:  # fmt: skip
        assert await phone.ussd(answer) == f"{reason}\n{ask}", answer
        assert not phone.ended
    assert (await phone.ussd("601111222 602-333-444 +48603555666")).startswith(
        "Trzy i Ja: nowe numery 601 111 222, 602 333 444, 603 555 666. Opłata 3,00 zł"
    )
    assert (await phone.ussd("111111")).startswith("Numery zmienione od ")
    assert (await backend.favourites("48600000001")).three[0] == "48601111222"


async def test_friend_for_anna(runtime: Runtime, backend: Backend) -> None:
    anna = phone_for(runtime, "48600000002")
    assert await anna.dial("*100*4*2#") == f"Przyjaciel: 604 567 890.\n1 Zmień\n{NAV}"
    await anna.ussd("1")
    assert (await anna.ussd("604567890")).startswith("Ten numer jest już ustawiony.\n")
    assert (await anna.ussd("605 000 111")).startswith("Przyjaciel: nowy numer 605 000 111.")
    assert (await anna.ussd("222222")).startswith("Numer zmieniony od ")


async def test_payments_tariff_profit(phone: Phone) -> None:
    assert (await phone.dial("*100*5*1#")).startswith("Faktura ")
    invoices = await phone.dial("*100*5*2#")
    assert invoices.startswith("Faktury:\n") and len(invoices) <= SCREEN_LIMIT
    assert (await phone.dial("*100*5*3#")).startswith("Forma płatności: przelew.")
    assert await phone.ussd("1") == (
        f"Nowa forma płatności:\n1 polecenie zapłaty\n2 karta płatnicza\n{NAV}"
    )
    assert (await phone.ussd("2")).startswith("Zmiana formy płatności na: karta płatnicza.")
    assert (await phone.ussd("111111")).startswith("Przyjęliśmy wniosek ")
    assert (await phone.dial("*100*6#")).startswith("Taryfa: Idea Optimum 120, 49,00 zł/mies.")
    assert (await phone.ussd("1")).startswith("Wybierz taryfę:\n1 Idea Start 60, 29,00 zł/mies.")
    assert (await phone.ussd("2")).startswith("Zmiana taryfy na Idea Plus 300 od ")
    assert (await phone.ussd("111111")).startswith("Przyjęliśmy zmianę taryfy")
    assert re.fullmatch(  # the change waiting for the next period, with its date
        r"Taryfa: Idea Optimum 120, .*\. Od \d\d\.\d\d\.\d{4}: Idea Plus 300\.\n1 Zmień taryfę\n"
        + NAV,
        await phone.dial("*100*6#"),
    )
    # Profit join is a menu option (no SMS instruction), offered only to a non-member.
    assert await phone.dial("*100*8#") == f"Nie należysz do Programu Profit.\n2 Dołącz\n{NAV}"
    assert await phone.ussd("1") == (
        f"Wybierz numer z menu.\nNie należysz do Programu Profit.\n2 Dołącz\n{NAV}"
    )
    assert await phone.ussd("2") == (
        f"Dołączenie do Programu Profit: bez opłat, punkty za każdą fakturę.\n{ASK_CODE}\n{NAV}"
    )
    assert await phone.ussd("111111") == "Witamy w Programie Profit! Na start masz 100 punktów."
    assert re.fullmatch(
        r"Program Profit: 100 punktów \(od \S+\)\.\n1 Historia punktów\n" + NAV,
        await phone.dial("*100*8#"),
    )


async def test_password_screen(phone: Phone, backend: Backend) -> None:
    reply = await phone.dial("*100*7#")
    assert phone.ended
    found = re.match(r"Hasło tymczasowe do Idea24 on-line: (\S{8})\n", reply)
    assert found, reply
    assert await backend.verify_temp_password("48600000001", found.group(1))


async def test_complaint_letter(phone: Phone, case: StoreCase) -> None:
    await phone.dial("*100*9#")
    assert await phone.ussd("2") == (
        "Reklamacja - rodzaj:\n1 Faktura\n2 Jakość połączeń\n3 Usługi dodatkowe\n4 Płatności\n"
        f"5 Obsługa klienta\n{NAV}"
    )
    assert await phone.ussd("2") == (
        f"Podaj dane reklamacji (np. numer faktury, datę, kwotę):\n{NAV}"
    )
    assert await phone.ussd("ż" * 120) == f"Opisz krótko sprawę:\n{NAV}"
    assert (await phone.ussd("ł" * 161)).startswith("Za długie (najwyżej 160 znaków).")
    assert (await phone.ussd("ś" * 160)).startswith(
        "Wyślemy do BOK reklamację: Jakość połączeń.\n" + ASK_CODE
    )
    record = await case.store.load("48600000001", "ussd")
    assert record is not None and len(record.encode()) < 1024, "USSD state under 1 KiB"
    assert re.fullmatch(
        r"Reklamacja przyjęta, numer RK/\d{4}/\d+\. Status: przyjęte\.",
        await phone.ussd("111111"),
    )


async def test_sessions_expire_restart_and_fail_cleanly(
    case: StoreCase, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = DialogSettings(sms_dialog_timeout=0.3, ussd_timeout=0.3)
    phone = Phone(Runtime(case.store, build_dialogs(short), backend))
    await phone.dial()
    await case.advance(0.45)
    assert await phone.ussd("1") == "Sesja wygasła. Wybierz *100# ponownie."
    assert phone.ended
    await phone.dial("*100*3#")
    assert await phone.ussd("1", session="another") == ROOT, "a new session id starts at the root"
    await phone.ussd("3", session="another")
    assert await phone.dial() == ROOT, "dialling again starts at the root"

    async def broken(*args: object) -> None:
        raise RuntimeError("a bug in the read")

    monkeypatch.setattr(backend, "usage", broken)
    assert await phone.ussd("2") == (
        "Przepraszamy, wystąpił błąd. Spróbuj ponownie za chwilę lub zadzwoń na *22."
    )
    assert phone.ended
    assert await case.store.load("48600000001", "ussd") is None, "the failed session is dropped"


async def test_a_number_that_is_not_a_subscriber_is_refused_at_the_dial(
    runtime: Runtime, case: StoreCase
) -> None:
    stranger = phone_for(runtime, "48699999999")
    assert await stranger.dial() == "Ten numer nie jest abonentem Idea. Zadzwoń na *22."
    assert stranger.ended
    assert await case.store.load("48699999999", "ussd") is None
    assert await stranger.dial("*100*2#") == "Ten numer nie jest abonentem Idea. Zadzwoń na *22."


async def test_the_answers_so_far_are_replayed_when_the_session_is_new(
    runtime: Runtime, backend: Backend
) -> None:
    """An aggregator's first request may carry answers already (``*100*3#`` dialled as
    ``*100#`` plus text ``3``): the network's equivalent, not "session expired"."""
    replies = await runtime.turn(
        Inbound("48600000001", "ussd", "1", session_id="agg1", dialled="*100*3*1#")
    )
    assert replies[0].text == f"Moje usługi:\n1 Trzy i Ja (wł.)\n2 MMS (wł.)\n{NAV}"
    # Later answers of the same session are answers, whatever the dial string says.
    replies = await runtime.turn(
        Inbound("48600000001", "ussd", "2", session_id="agg1", dialled="*100*3*1*2#")
    )
    assert replies[0].text.startswith("MMS: włączony, ")


async def test_ussd_and_sms_of_one_subscriber_do_not_mix(phone: Phone) -> None:
    assert (await phone.sms("WLACZ NOCE")).endswith("NIE anuluje.")
    await phone.dial("*100*3#")
    assert (await phone.sms("TAK 111111")).startswith("Usługa Darmowe noce włączona")
    assert (await phone.ussd("1")).startswith("Moje usługi:\n1 Trzy i Ja (wł.)\n2 MMS (wł.)\n3 ")


# -- the whole tree ------------------------------------------------------------------------------

ANSWERS = {
    "acct.addr.new": "ul. Krótka 7, 31-019 Kraków",
    "fav.3ija.new": "601111222 602333444 603555666",
    "fav.przyjaciel.new": "605000111",
    "care.zlecenie.data": "FV/1/2026",
    "care.zlecenie.desc": "Proszę o duplikat",
    "care.reklamacja.data": "FV/1/2026",
    "care.reklamacja.desc": "Za wysoka kwota",
}


@pytest.mark.parametrize(
    ("case", "msisdn", "lang"),
    [
        ("memory", "48600000001", "pl"),
        ("memory", "48600000001", "en"),
        ("memory", "48600000002", "pl"),
        pytest.param("redis", "48600000002", "en", marks=pytest.mark.redis),
    ],
    indirect=["case"],
)
async def test_walk_the_whole_tree(
    case: StoreCase, backend: Backend, msisdn: str, lang: str
) -> None:
    """Every screen ≤ 182 characters, every option leads to its screen, 0/00/99 work."""
    await set_language(backend, msisdn, lang)
    dialogs = build_dialogs()
    ussd = dialogs["ussd"]
    assert isinstance(ussd, UssdDialog)
    runtime = Runtime(case.store, dialogs, backend, rate_limit=0)
    screens = ussd.screens
    sid = 0

    async def state() -> str | None:
        record = await case.store.load(msisdn, "ussd")
        return record.state if record else None

    async def say(text: str) -> tuple[str, bool]:
        replies = await runtime.turn(Inbound(msisdn, "ussd", text, session_id=f"w{sid}"))
        assert len(replies) == 1
        assert len(replies[0].text) <= SCREEN_LIMIT, replies[0].text
        assert not SMS_SYNTAX.search(replies[0].text), replies[0].text
        return replies[0].text, replies[0].end

    async def reach(path: list[str]) -> str:
        nonlocal sid
        sid += 1
        text, _ = await say("*100#")
        for answer in path:
            text, end = await say(answer)
            assert not end or answer == path[-1]
        return text

    seen: set[str] = set()
    hidden: set[str] = set()
    queue: list[tuple[str, list[str]]] = [("root", [])]
    home = (await reach([])).split("\n")
    while queue:
        screen_id, path = queue.pop(0)
        if screen_id in seen:
            continue
        seen.add(screen_id)
        screen = screens[screen_id]
        shown = await reach(path)
        assert shown.strip()
        if screen.final:
            assert await state() is None, f"{screen_id} ends the session"
            continue
        if await state() is None and screen.answer is not None and screen.ok == "end":
            continue  # a change refused before asking the code (e.g. already in Profit)
        assert await state() == screen_id, (path, shown)
        if screen.answer is None:
            # A non-menu answer repeats the screen with a hint.
            hinted, end = await say("x")
            assert not end and hinted == f"{ussd_hint(lang)}\n{shown}", hinted
        else:
            # An answer screen takes any text, so check 00 (home) here and come back.
            assert (await say("00"))[0].split("\n") == home
            await reach(path)
        if screen.items is not None and ussd_more(lang) in shown:
            more, _ = await say("99")  # the next page of a long list
            assert more != shown and ussd_more(lang) not in more.split("\n")[0]
            assert await state() == screen_id
        if screen.parent is not None:
            await say("0")
            assert await state() == screen.parent
            assert (await say("00"))[0].split("\n") == home
        for option in screen.options:
            if f"\n{option.key} " in f"\n{shown}":
                queue.append((option.target, [*path, option.key]))
            else:  # offered by state (Profit history to members, join to others)
                assert option.shown is not None, (screen_id, option.key, shown)
                hidden.add(option.target)
        if screen.pick is not None and "\n1 " in shown:
            queue.append((screen.pick, [*path, "1"]))
        if screen.answer is not None and screen.ok is not None and screen_id in ANSWERS:
            queue.append((screen.ok, [*path, ANSWERS[screen_id]]))
    # Every screen is reached (end: by the flow tests; one of Profit's by the other subscriber).
    assert set(screens) - seen == {"end"} | (hidden - seen)
    assert len(hidden - seen) <= 1
    assert ussd.overflows == 0


#: What only an SMS can do: a screen never tells the subscriber to send one.
SMS_SYNTAX = re.compile(
    r"[Ww]yślij|^Send |[.:] Send |PLATNOSC|PAYMENT|WLACZ|WYLACZ| ON [A-Z]|DOLACZ|JOIN|USLUG"
    r"|SERVICES|TAK \d|YES \d|3IJA \d|FRIENDS? \d|PRZYJACIEL \d|HISTORIA|HISTORY"
    r"|TARYFA [A-Z]|TARIFF [A-Z]|FAKTURY \d|INVOICES \d"
)


def ussd_hint(lang: str) -> str:
    return "Wybierz numer z menu." if lang == "pl" else "Choose a number from the menu."


def ussd_more(lang: str) -> str:
    return "99 Dalej" if lang == "pl" else "99 More"


async def test_random_answers_never_break_a_screen(
    runtime: Runtime, case: StoreCase, caplog: pytest.LogCaptureFixture
) -> None:
    """A seeded random walk of 300 answers: every reply is a screen ≤ 182, no turn fails."""
    import random

    rng = random.Random(24)
    answers = ["0", "00", "99", "1", "2", "3", "4", "5", "6", "7", "8", "9", "x", "*100#",
               "*100*3*2#", "000000", "601111222 602333444 603555666",
               "ul. Krótka 7, 31-019 Kraków", "Opis sprawy"]  # fmt: skip
    phone = Phone(runtime, "48600000003")
    await phone.dial()
    for _ in range(300):
        text = rng.choice(answers)
        if phone.ended and not text.startswith("*"):
            text = "*100#"
        reply = await (phone.dial(text) if text.startswith("*") else phone.ussd(text))
        assert reply.strip() and len(reply) <= SCREEN_LIMIT, reply
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_locked_out_is_said_before_any_code_is_asked(runtime: Runtime) -> None:
    sms = phone_for(runtime, "48600000001")
    await sms.sms("WLACZ NOCE")
    for wrong in ("000001", "000002", "000003"):
        await sms.sms(f"TAK {wrong}")
    ussd = phone_for(runtime, "48600000001")
    locked = await ussd.dial("*100*8*2#")  # Profit: join → would ask for the code
    assert locked.startswith("Kod abonencki zablokowany do "), locked
    assert "Podaj kod" not in locked
