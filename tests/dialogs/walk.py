"""Every SMS command of the subscriber guide, walked on the longest plausible data, and measured.

The walk runs the real dialogs on the real backend (SQLite, demo subscribers) on a fixed day, with
the data stretched to the longest a subscriber plausibly has: 7-digit invoice amounts, the longest
address, the services and tariffs with the longest names. Each reply is encoded as the server
would send it under each text policy and its parts counted; ``test_dialogs_segments.py`` holds
the replies to their budget, and the table of ``docs/subscriber-guide.md`` is written from it:

    .venv/bin/python -m tests.dialogs.walk      # rewrites the table in docs/subscriber-guide.md
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from sqlalchemy import update

from backend.api import Backend
from backend.db import open_backend
from backend.models import Account, InvoiceRow
from backend.seed import seed_demo
from dialogs import build_dialogs
from dialogs.settings import DialogSettings
from fsm.runtime import Inbound, Runtime
from fsm.store import MemoryStore
from gateway.settings import Settings
from gateway.sms.text import POLICIES, Policy, encode_message, sms_parts, text_policy

SECRET = "walk-secret-key"
#: The walk's "now": a Monday noon in Warsaw, mid billing period.
NOW = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
#: 7 digits: the largest invoice a subscriber plausibly has.
LONGEST_AMOUNT = 9_999_999
LONGEST_ADDRESS = "al. Marszałka Józefa Piłsudskiego 112/14, 05-520 Konstancin-Jeziorna"
DOC = Path(__file__).resolve().parents[2] / "docs" / "subscriber-guide.md"
BEGIN = "<!-- segment table: begin (written by python -m tests.dialogs.walk) -->"
END = "<!-- segment table: end -->"

PASSWORD = re.compile(r"(Idea24 on-line: )\S{8}")
JAN, ANNA, PIOTR = "48600000001", "48600000002", "48600000003"
BIZ, ACCOUNT_CODE = "48600000010", "999999"  # Krzak Sp. z o.o., Idea dla Firm
STRANGER = "48699999999"
CODES = {JAN: "111111", ANNA: "222222", PIOTR: "333333"}


@dataclass(frozen=True, slots=True)
class Step:
    msisdn: str
    text: str
    confirm: bool = False  # the reply is a confirmation prompt (budget: one part)


@dataclass(frozen=True, slots=True)
class Row:
    lang: str
    msisdn: str
    command: str
    reply: str
    confirm: bool
    parts: dict[Policy, int]


def _steps(lang: str) -> Iterator[Step]:
    pl = lang == "pl"

    def k(polish: str, english: str) -> str:
        return polish if pl else english

    yes = k("TAK", "YES")
    no = k("NIE", "NO")
    yield Step(JAN, k("POMOC", "HELP"))
    yield Step(JAN, k("kup kawę", "buy coffee"))
    yield Step(JAN, k("HASLO", "PASSWORD"))
    yield Step(JAN, "INFO")
    yield Step(JAN, k("PAKIET", "USAGE"))
    yield Step(JAN, k("FAKTURA", "INVOICE"))
    yield Step(JAN, k("FAKTURY", "INVOICES"))
    yield Step(JAN, k("FAKTURY 2", "INVOICES 2"))
    yield Step(JAN, k("PLATNOSC", "PAYMENT"))
    yield Step(JAN, k("PLATNOSC ZMIEN", "PAYMENT CHANGE"))
    yield Step(JAN, k("PLATNOSC ZMIEN KARTA", "PAYMENT CHANGE KARTA"), confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("TARYFA", "TARIFF"))
    yield Step(JAN, k("TARYFA MAX", "TARIFF MAX"), confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("TARYFA", "TARIFF"))
    yield Step(JAN, k("USLUGI", "SERVICES"))
    yield Step(JAN, k("USLUGI WSZYSTKIE", "SERVICES ALL"))
    yield Step(JAN, k("USLUGA POCZTAGLOSOWA", "SERVICE POCZTAGLOSOWA"))
    yield Step(JAN, k("WLACZ POCZTAGLOSOWA", "ON POCZTAGLOSOWA"), confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("WLACZ NOCE", "ON NOCE"), confirm=True)
    yield Step(JAN, f"{yes} 000000")
    yield Step(JAN, no)
    yield Step(JAN, k("WYLACZ MMS", "OFF MMS"), confirm=True)
    yield Step(JAN, f"{yes}")
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("WLACZ MMS", "ON MMS"), confirm=True)
    yield Step(JAN, no)
    yield Step(JAN, k("WLACZ XYZ", "ON XYZ"))
    yield Step(JAN, k("3IJA", "FRIENDS"))
    yield Step(JAN, k("3IJA", "FRIENDS") + " 691234567 692345678 693456789", confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("3IJA", "FRIENDS") + " 5011111 502222222")
    yield Step(JAN, k("3IJA", "FRIENDS") + " 601234567 +44 7700 900123 603456789")
    yield Step(JAN, k("PRZYJACIEL", "FRIEND"))
    yield Step(ANNA, k("PRZYJACIEL", "FRIEND"))
    yield Step(ANNA, k("PRZYJACIEL 601234567", "FRIEND 601234567"), confirm=True)
    yield Step(ANNA, f"{yes} {CODES[ANNA]}")
    yield Step(JAN, k("ADRES", "ADDRESS"))
    yield Step(
        JAN, k("ADRES ", "ADDRESS ") + LONGEST_ADDRESS.replace("112/14", "12/140"), confirm=True
    )
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    # A whole business account's change: confirmed with the account code.
    moved = LONGEST_ADDRESS.replace("112/14", "14/112")
    yield Step(BIZ, k("ADRES ", "ADDRESS ") + moved, confirm=True)
    yield Step(BIZ, f"{yes} {ACCOUNT_CODE}")
    yield Step(JAN, k("ZLECENIE", "ORDER"))
    yield Step(JAN, "2")
    yield Step(JAN, k("okres 10.2026", "period 10.2026"))
    yield Step(JAN, k("Proszę o biling szczegółowy", "Please send an itemised bill"), confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(JAN, k("REKLAMACJA", "COMPLAINT"))
    yield Step(JAN, no)
    yield Step(JAN, "PROFIT")
    yield Step(JAN, k("PROFIT DOLACZ", "PROFIT JOIN"), confirm=True)
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    yield Step(ANNA, "PROFIT")
    yield Step(ANNA, k("PROFIT HISTORIA", "PROFIT HISTORY"))
    yield Step(JAN, f"{yes} {CODES[JAN]}")
    # A change sent while another waits replaces it, and its prompt says so within one part.
    yield Step(JAN, k("WLACZ NOCE", "ON NOCE"), confirm=True)
    yield Step(JAN, k("ADRES ", "ADDRESS ") + LONGEST_ADDRESS, confirm=True)
    yield Step(JAN, k("3IJA", "FRIENDS") + " 601234567 602345678 603456789", confirm=True)
    yield Step(JAN, k("WLACZ MMS", "ON MMS"), confirm=True)
    yield Step(JAN, no)
    yield Step(PIOTR, k("USLUGI", "SERVICES"))
    yield Step(STRANGER, "INFO" if pl else "USAGE")


def parts(text: str) -> dict[Policy, int]:
    return {p: len(encode_message(text, policy=p)) for p in POLICIES}


async def stretch(backend: Backend) -> None:
    """The demo data at its longest: 7-digit invoices, the longest address."""
    street, _, rest = LONGEST_ADDRESS.partition(", ")
    postal, _, city = rest.partition(" ")
    async with backend.sessionmaker.begin() as session:
        await session.execute(update(InvoiceRow).values(amount=LONGEST_AMOUNT))
        await session.execute(update(Account).values(street=street, postal_code=postal, city=city))
    backend.invalidate_cache()


async def walk(backend: Backend, lang: str) -> list[Row]:
    # The dialogs count parts as the server does under its default policy (a replaced change's
    # note is kept only where it costs no part).
    counted = DialogSettings(sms_parts=partial(sms_parts, policy=text_policy(Settings().encoding)))
    runtime = Runtime(MemoryStore(), build_dialogs(counted), backend, rate_limit=10_000)
    rows = []
    for step in _steps(lang):
        replies = await runtime.turn(Inbound(step.msisdn, "sms", step.text))
        # The temporary password is random: the table shows one of the same length.
        reply = PASSWORD.sub(r"\g<1>Ab3dEf7h", "\n".join(r.text for r in replies))
        rows.append(Row(lang, step.msisdn, step.text, reply, step.confirm, parts(reply)))
    return rows


async def walk_all(db: Path) -> list[Row]:
    rows: list[Row] = []
    for lang in ("pl", "en"):
        path = db.with_name(f"walk-{lang}.db")
        path.unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
        async with open_backend(url, SECRET, lambda: NOW, migrate=True) as backend:
            await seed_demo(backend)
            await stretch(backend)
            rows += await walk(backend, lang)
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def table(rows: list[Row]) -> str:
    head = "| command | reply | " + " | ".join(POLICIES) + " |"
    out = [head, "| --- | --- | " + " | ".join("---:" for _ in POLICIES) + " |"]
    for r in rows:
        mark = " (prompt)" if r.confirm else ""
        counts = " | ".join(str(r.parts[p]) for p in POLICIES)
        out.append(f"| `{_cell(r.command)}`{mark} | {_cell(r.reply)} | {counts} |")
    totals = " | ".join(str(sum(r.parts[p] for r in rows)) for p in POLICIES)
    out.append(f"| **all {len(rows)} replies** | parts in all | {totals} |")
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    lines = []
    for p in POLICIES:
        one = sum(1 for r in rows if r.parts[p] == 1)
        lines.append(
            f"- `{p}`: {sum(r.parts[p] for r in rows)} parts, {one} of {len(rows)} replies "
            f"({100 * one // len(rows)} %) in one part, longest {max(r.parts[p] for r in rows)}"
        )
    return "\n".join(lines)


def section(rows: list[Row]) -> str:
    body = [BEGIN, "", summary(rows), ""]
    for lang, title in (("pl", "Po polsku"), ("en", "In English")):
        body += [f"#### {title}", "", table([r for r in rows if r.lang == lang]), ""]
    return "\n".join([*body, END])


def with_section(doc: str, rows: list[Row]) -> str:
    start, stop = doc.index(BEGIN), doc.index(END) + len(END)
    return doc[:start] + section(rows) + doc[stop:]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(walk_all(Path(tmp) / "walk.db"))
    print(summary(rows))
    if "--print" in sys.argv:
        for r in rows:
            print(r.parts, repr(r.command), "->", repr(r.reply))
        return 0
    DOC.write_text(with_section(DOC.read_text(), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
