"""Dialog input at its worst, through the real Runtime, dialogs and backend: a clear answer always.

"Clear" means: at least one reply, every reply non-empty and recognisably a catalogue text (all
literal fragments of one template appear in it), never the ``notice.error`` / ``notice.busy``
apology and no error logged. Inputs: very long texts, control characters and NUL, emoji,
mixed and right-to-left scripts, look-alike letters, and phone numbers in every shape, by SMS
(commands, arguments, confirmations) and USSD (menus, answers, shortcuts); then random text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.db import open_backend
from backend.manage import seed
from dialogs import build_dialogs
from dialogs.catalogue import en, pl
from fsm.runtime import Inbound, Reply, Runtime
from fsm.store import MemoryStore

SECRET = "fuzz-secret"
SUBSCRIBER = "48600000001"
STRANGER = "48699999999"
APOLOGIES = {pl.TEXTS["notice.error"], en.TEXTS["notice.error"]} | {
    pl.TEXTS["notice.busy"],
    en.TEXTS["notice.busy"],
}
_FIELD = re.compile(r"\{[^}]*\}")
NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")
TEMPLATES = [
    (key, [f for f in (p.strip() for p in _FIELD.split(t)) if len(f) >= 3])
    for lang in (pl.TEXTS, en.TEXTS)
    for key, t in lang.items()
]

NUMBER_SHAPES = [
    "601234567",
    "+48601234567",
    "+48 601 234 567",
    "0048601234567",
    "48-601-234-567",
    "601-234-567",
    "(601) 234 567",
    "601.234.567",
    "60123456",  # too short
    "6012345678901",  # too long
    "+1 202 555 0100",  # not Polish
    "６０１２３４５６７",  # full-width digits
    "٦٠١٢٣٤٥٦٧",  # Arabic-Indic digits
    "-601234567",
    "+",
    "0",
    "9" * 400,
    "601234567\x00",
    "\u202e765432106",  # right-to-left override
]
ODD_TEXTS = [
    "",
    " ",
    "\r\n\t",
    "\x00",
    "PAK\x00IET",
    "\x00PAKIET",
    "\x1b[31mINFO\x1b[0m",
    "\u200bPAKIET",  # zero-width space
    "\ufeffINFO",  # byte-order mark
    "\u202ePAKIET",
    "pakiet",
    "  PaKiEt  ",
    "PAKİET",  # Turkish dotted I
    "ПАКИЕТ",  # Cyrillic look-alikes
    "ΡΑΚΙΕΤ",  # Greek look-alikes
    "ＰＡＫＩＥＴ",  # full-width
    "ℙ𝔸𝕂𝕀𝔼𝕋",  # mathematical letters
    "hasło",
    "HASŁO",
    "PAKIET 😀",
    "😀" * 300,
    "👨‍👩‍👧‍👦",
    "مرحبا PAKIET",
    "שלום",
    "你好",
    "PAKIET " + "x" * 5000,
    "A" * 10000,
    "POMOC\nINFO\nPAKIET",
    "TAK",
    "TAK " + "1" * 1000,
    "TAK １１１１１１",
    "TAK 111111\x00",
    "NIE " + "😀" * 50,
    "USLUGA " + "\x00" * 20,
    "WLACZ " + "Ą" * 500,
    "ADRES " + "ul. Długa 5/3, 00-950 Warszawa " * 50,
    "ADRES \u202eul. Długa 5, 00-950 Warszawa",
    "ZLECENIE " + "\x07" * 30,
    "PROFIT HISTORIA " + "9" * 300,
    "TARYFA " + "ż" * 300,
]
USSD_ANSWERS = [
    "1",
    "01",
    " 2 ",
    "-1",
    "1e9",
    "99999999999999999999",
    "٣",
    "３",
    "\x00",
    "😀",
    "1" * 1000,
    "",
    "0",
    "00",
    "99",
    "*",
    "#",
    "TAK 111111",
]
USSD_DIALS = [
    "*100#",
    "*100*2#",
    "*100*" + "9" * 500 + "#",
    "*100*" + "*".join("3" * 60) + "#",
    "*100*😀#",
    "*100*\x00#",
    "*100",
    "*100*1*1*1*1*1*1*1*1*1#",
]


def catalogue_key(reply: str) -> str | None:
    """The catalogue template this reply is made from (most literal text wins), if any."""
    best: tuple[int, str] | None = None
    for key, fragments in TEMPLATES:
        if fragments and all(f in reply for f in fragments):
            size = sum(map(len, fragments))
            if best is None or size > best[0]:
                best = (size, key)
    return best[1] if best else None


class Judge:
    """Counts answers and fails on an unclear one."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.keys: Counter[str] = Counter()
        self.turns = 0

    def __call__(self, text: str, replies: list[Reply]) -> None:
        self.turns += 1
        assert replies, f"no answer to {text[:80]!r}"
        for reply in replies:
            assert reply.text.strip(), f"empty answer to {text[:80]!r}"
            assert reply.text not in APOLOGIES, f"{reply.text!r} for {text[:80]!r}"
            key = catalogue_key(reply.text)
            assert key is not None, f"{reply.text[:200]!r} is not a catalogue text ({text[:80]!r})"
            self.keys[key.split(".")[0]] += 1
        errors = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not errors, f"{text[:80]!r} logged {errors[0].getMessage()}"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuzzdb") / "template.db"
    asyncio.run(seed(f"sqlite+aiosqlite:///{path}", SECRET, demo=True))
    yield path


@pytest.fixture
async def runtime(template_db: Path, tmp_path: Path) -> AsyncIterator[Runtime]:
    db = tmp_path / "idea24.db"
    shutil.copy(template_db, db)
    async with open_backend(f"sqlite+aiosqlite:///{db}", SECRET) as backend:
        yield Runtime(MemoryStore("fz"), build_dialogs(), backend, rate_limit=0)


async def sms(runtime: Runtime, msisdn: str, text: str) -> list[Reply]:
    return await runtime.turn(Inbound(msisdn, "sms", text))


async def test_odd_sms_texts_get_clear_answers(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    judge = Judge(caplog)
    for msisdn in (SUBSCRIBER, STRANGER):
        for text in ODD_TEXTS:
            judge(text, await sms(runtime, msisdn, text))
    print(f"\nodd SMS: {judge.turns} turns, all clear; answers by kind {dict(judge.keys)}")


async def test_numbers_in_every_shape(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    """3IJA / PRZYJACIEL with each shape, then a confirmation: a quote, or a clear refusal."""
    judge = Judge(caplog)
    for shape in NUMBER_SHAPES:
        for command in (
            f"PRZYJACIEL {shape}",
            f"3IJA {shape} 602345678 603456789",
            f"3IJA {shape}",
            f"FRIEND {shape}",
        ):
            replies = await sms(runtime, "48600000002", command)
            judge(command, replies)
            for reply in replies:
                if (catalogue_key(reply.text) or "").startswith(("confirm", "fav")):
                    # A quoted number is shown as it will be stored: ASCII digits, 48 first.
                    assert not NON_ASCII_DIGIT.search(reply.text), reply.text
            judge("NIE", await sms(runtime, "48600000002", "NIE"))
    print(f"\nnumber shapes: {len(NUMBER_SHAPES)} shapes, {judge.turns} turns, {dict(judge.keys)}")


async def test_ussd_odd_dials_and_answers(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    judge = Judge(caplog)
    session = 0
    for dial in USSD_DIALS:
        for answer in USSD_ANSWERS:
            session += 1
            sid = f"s{session}"
            first = await runtime.turn(Inbound(SUBSCRIBER, "ussd", dial, session_id=sid))
            judge(dial, first)
            if first[-1].end:
                continue
            judge(answer, await runtime.turn(Inbound(SUBSCRIBER, "ussd", answer, session_id=sid)))
    # Screens stay USSD-sized whatever was typed.
    print(f"\nodd USSD: {judge.turns} turns over {session} sessions, {dict(judge.keys)}")


async def test_random_text_gets_clear_answers(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Random Unicode (every category, surrogates aside) by SMS and as USSD answers."""
    judge = Judge(caplog)
    texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
    inputs: list[str] = []

    @settings(
        max_examples=150,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(texts)
    def collect(text: str) -> None:
        inputs.append(text)

    collect()
    for i, text in enumerate(inputs):
        judge(text, await sms(runtime, SUBSCRIBER, text))
        sid = f"r{i}"
        judge("*100#", await runtime.turn(Inbound(SUBSCRIBER, "ussd", "*100#", session_id=sid)))
        judge(text, await runtime.turn(Inbound(SUBSCRIBER, "ussd", text, session_id=sid)))
    print(f"\nrandom text: {len(inputs)} inputs, {judge.turns} turns, {dict(judge.keys)}")
