"""Seed data: the reference catalogue, the demo subscribers of the contract, synthetic load.

Everything is written with bulk Core inserts (no ORM objects), only for keys not yet present, so
seeding twice changes nothing and 100,000 synthetic subscribers take seconds.

Demo subscribers (DESIGN.md, "Demo subscribers"; subscriber code in brackets):
48600000001 (111111) Optimum 120 min / 100 SMS, "Trzy i Ja" with three numbers, not in Profit;
48600000002 (222222) "Przyjaciel" with one number, Profit member with points and history;
48600000003 (333333) no optional services. A business account (Idea dla Firm, account code
999999) holds 48600000010 (101010) and 48600000011 (111011). Synthetic subscribers
(48700000000+i) are written by ``backend.synthetic``.

Dates are counted back from the day of seeding; ``backend.demo_calendar.DemoCalendar`` keeps
them current while a server runs across month ends (last month's invoice, the new period's
usage, Profit points for each invoice), adding only what is missing, so a clock that goes back
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.api import Backend
from backend.clock import LOCAL_TZ
from backend.hashing import keyed_hash
from backend.models import (
    Account,
    ActiveService,
    Base,
    CatalogueService,
    InvoiceRow,
    LetterTypeRow,
    PaymentMethod,
    ProfitMember,
    ProfitTransactionRow,
    Subscriber,
    TariffPlan,
    UsageRow,
)
from backend.periods import period_start, shift_period
from backend.services.accounts import ACCOUNT_CODE, SUBSCRIBER_CODE

SYNTHETIC_BASE = 48700000000
SYNTHETIC_INVOICES = 12
BATCH = 5_000

TARIFFS = [
    # code, name, monthly fee (grosze), minutes, SMS, business only
    ("START", "Idea Start 60", 2900, 60, 50, False),
    ("OPTIMUM", "Idea Optimum 120", 4900, 120, 100, False),
    ("PLUS", "Idea Plus 300", 7900, 300, 300, False),
    ("MAX", "Idea Max 1000", 12900, 1000, 1000, False),
    ("FIRMA", "Idea dla Firm 500", 9900, 500, 500, True),
]

_URL = "https://idea24.example.pl/uslugi/"
SERVICES: list[dict[str, Any]] = [
    {
        "code": "3IJA",
        "name": "Trzy i Ja",
        "description": "Tańsze rozmowy i SMS-y z trzema wybranymi numerami w Polsce.",
        "activation_fee": 500,
        "monthly_fee": 500,
        "settings_schema": {"numbers": 3, "change_fee": 300},
    },
    {
        "code": "PRZYJACIEL",
        "name": "Przyjaciel",
        "description": "Rozmowy z jednym wybranym numerem za 1 gr/min.",
        "activation_fee": 0,
        "monthly_fee": 300,
        "settings_schema": {"numbers": 1, "change_fee": 200},
    },
    {
        "code": "ROAMING",
        "name": "Roaming",
        "description": "Połączenia i SMS-y za granicą.",
        "activation_fee": 0,
        "monthly_fee": 0,
    },
    {
        "code": "INTERNET1GB",
        "name": "Internet 1 GB",
        "description": "Pakiet 1 GB internetu w telefonie na okres rozliczeniowy.",
        "activation_fee": 0,
        "monthly_fee": 1500,
    },
    {
        "code": "INTERNET5GB",
        "name": "Internet 5 GB",
        "description": "Pakiet 5 GB internetu w telefonie na okres rozliczeniowy.",
        "activation_fee": 0,
        "monthly_fee": 3000,
    },
    {
        "code": "POCZTAGLOSOWA",
        "name": "Poczta głosowa",
        "description": "Nagrywanie wiadomości, gdy nie możesz odebrać.",
        "activation_fee": 0,
        "monthly_fee": 0,
    },
    {
        "code": "MMS",
        "name": "MMS",
        "description": "Wysyłanie i odbieranie wiadomości MMS.",
        "activation_fee": 0,
        "monthly_fee": 0,
    },
    {
        "code": "SMS100",
        "name": "Pakiet 100 SMS",
        "description": "Dodatkowe 100 SMS-ów do wszystkich sieci.",
        "activation_fee": 0,
        "monthly_fee": 900,
    },
    {
        "code": "NOCE",
        "name": "Darmowe noce",
        "description": "Rozmowy w Idei w godz. 22-6 bez opłat.",
        "activation_fee": 1000,
        "monthly_fee": 500,
    },
]

PAYMENT_METHODS = [
    ("PRZELEW", "Przelew"),
    ("POLECENIE_ZAPLATY", "Polecenie zapłaty"),
    ("KARTA", "Karta płatnicza"),
]

LETTER_TYPES = [
    ("zlecenie", "1", "Duplikat faktury", "Duplicate invoice"),
    ("zlecenie", "2", "Biling szczegółowy", "Itemised bill"),
    ("zlecenie", "3", "Blokada karty SIM", "Block the SIM card"),
    ("zlecenie", "4", "Wymiana karty SIM", "Replace the SIM card"),
    ("zlecenie", "5", "Cesja umowy", "Transfer of the contract"),
    ("reklamacja", "1", "Faktura", "Invoice"),
    ("reklamacja", "2", "Jakość połączeń", "Call quality"),
    ("reklamacja", "3", "Usługi dodatkowe", "Additional services"),
    ("reklamacja", "4", "Płatności", "Payments"),
    ("reklamacja", "5", "Obsługa klienta", "Customer service"),
]


@dataclass(frozen=True, slots=True)
class DemoSubscriber:
    msisdn: str
    code: str
    name: str
    account: str
    tariff: str
    minutes_used: int
    sms_used: int


DEMO_ACCOUNTS = [
    # number, kind, name, account code, street, postal code, city, payment, billing day, opened
    ("1.0000001", "individual", "Jan Kowalski", "111111", "ul. Długa 5/3", "00-950", "Warszawa",
     "PRZELEW", 1, date(2019, 3, 1)),
    ("1.0000002", "individual", "Anna Nowak", "222222", "ul. Floriańska 12", "31-019", "Kraków",
     "POLECENIE_ZAPLATY", 10, date(2021, 6, 10)),
    ("1.0000003", "individual", "Piotr Wiśniewski", "333333", "al. Grunwaldzka 82/4", "80-244",
     "Gdańsk", "KARTA", 15, date(2023, 1, 15)),
    ("2.0000010", "business", "Krzak Sp. z o.o.", "999999", "ul. Piotrkowska 100", "90-004",
     "Łódź", "PRZELEW", 1, date(2020, 9, 1)),
]  # fmt: skip

DEMO = [
    DemoSubscriber("48600000001", "111111", "Jan Kowalski", "1.0000001", "OPTIMUM", 47, 38),
    DemoSubscriber("48600000002", "222222", "Anna Nowak", "1.0000002", "PLUS", 112, 64),
    DemoSubscriber("48600000003", "333333", "Piotr Wiśniewski", "1.0000003", "START", 15, 9),
    DemoSubscriber("48600000010", "101010", "Krzak Sp. z o.o.", "2.0000010", "FIRMA", 230, 120),
    DemoSubscriber("48600000011", "111011", "Krzak Sp. z o.o.", "2.0000010", "FIRMA", 75, 40),
]
DEMO_SERVICES: dict[str, list[tuple[str, list[str]]]] = {
    "48600000001": [("3IJA", ["48601234567", "48602345678", "48603456789"]), ("MMS", [])],
    "48600000002": [("PRZYJACIEL", ["48604567890"]), ("POCZTAGLOSOWA", [])],
    "48600000010": [("ROAMING", [])],
}
PROFIT_MEMBER = "48600000002"
PROFIT_ACCOUNT = "1.0000002"
PROFIT_BILLING_DAY = 10
#: How many past periods the roll-forward fills in for synthetic accounts (a server down longer
#: than that shows a gap in their invoices; the demo accounts always get all 12).
SYNTHETIC_ROLL_PERIODS = 3


class Target:
    """A session factory, a secret key and today's date, from a Backend or a bare session."""

    def __init__(
        self, target: Backend | AsyncSession, secret_key: str | bytes | None, today: date | None
    ) -> None:
        if isinstance(target, Backend):
            self.session: AsyncSession | None = None
            self.backend: Backend | None = target
            key = _bytes(secret_key) if secret_key is not None else target.context.secret_key
            self.today = today or target.context.today()
        else:
            if secret_key is None:
                raise TypeError("seeding through a session needs secret_key")
            if today is None:
                raise TypeError("seeding through a session needs today (no clock to ask)")
            self.session, self.backend = target, None
            key = _bytes(secret_key)
            self.today = today
        self.key = key

    async def run(self, work: Any) -> int:
        if self.session is not None:
            return int(await work(self.session))
        assert self.backend is not None
        async with self.backend.sessionmaker.begin() as session:
            result = int(await work(session))
        self.backend.invalidate_cache()
        return result


def _bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


async def insert_missing(
    session: AsyncSession, model: type[Base], key: Sequence[str], rows: Sequence[dict[str, Any]]
) -> int:
    table: Table = model.__table__  # type: ignore[assignment]
    columns = [table.c[name] for name in key]
    firsts = sorted({r[key[0]] for r in rows})
    query = select(*columns).where(columns[0].in_(firsts))
    existing = {tuple(r) for r in (await session.execute(query)).all()}
    fresh = [r for r in rows if tuple(r[name] for name in key) not in existing]
    for start in range(0, len(fresh), BATCH):
        await session.execute(insert(table), fresh[start : start + BATCH])
    return len(fresh)


async def seed_catalogue(session: AsyncSession) -> int:
    """Tariffs, services, payment methods, letter types; returns rows added."""
    added = await insert_missing(
        session,
        TariffPlan,
        ["code"],
        [
            dict(
                zip(
                    ("code", "name", "monthly_fee", "minutes", "sms", "business_only"),
                    t,
                    strict=True,
                )
            )
            | {"position": i}
            for i, t in enumerate(TARIFFS)
        ],
    )
    added += await insert_missing(
        session,
        CatalogueService,
        ["code"],
        [
            {"settings_schema": None, "url": _URL + s["code"].lower(), "position": i} | s
            for i, s in enumerate(SERVICES)
        ],
    )
    added += await insert_missing(
        session,
        PaymentMethod,
        ["code"],
        [{"code": c, "name": n, "position": i} for i, (c, n) in enumerate(PAYMENT_METHODS)],
    )
    added += await insert_missing(
        session,
        LetterTypeRow,
        ["kind", "code"],
        [
            {"kind": k, "code": c, "name": n, "name_en": e, "position": i}
            for i, (k, c, n, e) in enumerate(LETTER_TYPES)
        ],
    )
    return added


def invoice_rows(
    account: str, billing_day: int, monthly_fee: int, today: date, count: int, seed: int
) -> Iterable[dict[str, Any]]:
    current = period_start(today, billing_day)
    for i in range(1, count + 1):
        start = shift_period(current, -i)
        end = shift_period(start, 1) - timedelta(days=1)
        issued = end + timedelta(days=1)
        due = issued + timedelta(days=14)
        yield {
            "account_number": account,
            "number": f"FV/{start:%Y/%m}/{account}",
            "period_start": start,
            "period_end": end,
            "issued": issued,
            "due_date": due,
            "amount": monthly_fee + ((seed * 7919 + i * 104729) % 3000),
            "paid": due < today,
        }


async def seed_demo(
    target: Backend | AsyncSession,
    secret_key: str | bytes | None = None,
    today: date | None = None,
) -> int:
    """The catalogue and the demo subscribers of the contract; returns rows added."""
    t = Target(target, secret_key, today)
    return await t.run(lambda session: _seed_demo(session, t.key, t.today))


def demo_invoices(today: date, accounts: set[str] | None = None) -> list[dict[str, Any]]:
    """The demo accounts' invoices of the 12 periods before today's (of ``accounts`` only)."""
    fees = {t[0]: t[2] for t in TARIFFS}
    rows: list[dict[str, Any]] = []
    for i, account in enumerate(DEMO_ACCOUNTS):
        number, day = account[0], account[8]
        if accounts is None or number in accounts:
            tariff = next(d.tariff for d in DEMO if d.account == number)
            rows.extend(invoice_rows(number, day, fees[tariff], today, 12, i))
    return rows


def demo_usage(today: date, subscribers: set[str] | None = None) -> list[dict[str, Any]]:
    """Usage part-way through today's period for the demo numbers (of ``subscribers`` only)."""
    billing_day = {a[0]: a[8] for a in DEMO_ACCOUNTS}
    return [
        {
            "msisdn": d.msisdn,
            "period_start": period_start(today, billing_day[d.account]),
            "minutes_used": d.minutes_used,
            "sms_used": d.sms_used,
        }
        for d in DEMO
        if subscribers is None or d.msisdn in subscribers
    ]


async def _seed_demo(session: AsyncSession, key: bytes, today: date) -> int:
    added = await seed_catalogue(session)
    accounts: list[dict[str, Any]] = []
    for number, kind, name, code, street, postal, city, pay, day, since in DEMO_ACCOUNTS:
        accounts.append(
            {
                "number": number,
                "kind": kind,
                "name": name,
                "code_hash": keyed_hash(key, ACCOUNT_CODE, number, code),
                "street": street,
                "postal_code": postal,
                "city": city,
                "payment_method": pay,
                "billing_day": day,
                "opened": since,
                "version": 0,
            }
        )
    added += await insert_missing(session, Account, ["number"], accounts)
    opened = {a[0]: a[9] for a in DEMO_ACCOUNTS}
    subscribers: list[dict[str, Any]] = []
    for d in DEMO:
        subscribers.append(_subscriber_row(key, d.msisdn, d.code, d.name, d.account, d.tariff))
        subscribers[-1]["activated"] = opened[d.account]
    added += await insert_missing(session, Subscriber, ["msisdn"], subscribers)
    added += await insert_missing(session, UsageRow, ["msisdn", "period_start"], demo_usage(today))
    added += await insert_missing(session, InvoiceRow, ["number"], demo_invoices(today))
    at = datetime.combine(today, time(9), tzinfo=LOCAL_TZ).astimezone(UTC)
    active = [
        {"msisdn": m, "service_code": c, "activated_at": at - timedelta(days=90), "numbers": n}
        for m, items in DEMO_SERVICES.items()
        for c, n in items
    ]
    added += await insert_missing(session, ActiveService, ["msisdn", "service_code"], active)
    added += await _seed_profit(session, today)
    return added


def profit_invoice_entries(today: date) -> list[tuple[date, int, str, str]]:
    """Points for each of the Profit member's last 12 invoices, dated the day it was issued."""
    current = period_start(today, PROFIT_BILLING_DAY)
    entries = []
    for i in range(12, 0, -1):
        start = shift_period(current, -i)
        reference = f"FV/{start:%Y/%m}/{PROFIT_ACCOUNT}"
        entries.append((shift_period(start, 1), 60 + 5 * start.month, "invoice", reference))
    return entries


async def _seed_profit(session: AsyncSession, today: date) -> int:
    if await session.get(ProfitMember, PROFIT_MEMBER) is not None:
        return 0
    joined = date(2022, 5, 10)
    history: list[tuple[date, int, str, str]] = [(joined, 100, "welcome", "")]
    current = period_start(today, PROFIT_BILLING_DAY)
    history += profit_invoice_entries(today)
    history.append((shift_period(current, -6) + timedelta(days=3), 250, "bonus", "URODZINY"))
    history.append(
        (shift_period(current, -3) + timedelta(days=5), -300, "redeem", "NAGRODA-SMS100")
    )
    session.add(
        ProfitMember(msisdn=PROFIT_MEMBER, joined=joined, points=sum(h[1] for h in history))
    )
    await session.execute(
        insert(ProfitTransactionRow),
        [
            {"msisdn": PROFIT_MEMBER, "day": d, "points": p, "kind": k, "reference": r}
            for d, p, k, r in history
        ],
    )
    await session.flush()
    return 1 + len(history)


def _subscriber_row(
    key: bytes, msisdn: str, code: str, name: str, account: str, tariff: str
) -> dict[str, Any]:
    return {
        "msisdn": msisdn,
        "account_number": account,
        "name": name,
        "tariff_code": tariff,
        "code_hash": keyed_hash(key, SUBSCRIBER_CODE, msisdn, code),
        "language": "pl",
        "activated": date(2024, 1, 1),
        "version": 0,
        "code_failures": 0,
        "code_locked_until": None,
        "password_failures": 0,
        "password_locked_until": None,
    }


async def add_subscriber(
    target: Backend | AsyncSession,
    msisdn: str,
    code: str,
    *,
    secret_key: str | bytes | None = None,
    name: str = "Abonent",
    tariff: str = "OPTIMUM",
    account: str | None = None,
    account_kind: str = "individual",
    account_code: str | None = None,
    minutes_used: int = 0,
    sms_used: int = 0,
    invoices: int = 12,
    today: date | None = None,
) -> None:
    """One subscriber (and its account, unless ``account`` exists): for operators and tests."""
    t = Target(target, secret_key, today)

    async def work(session: AsyncSession) -> int:
        number = account or f"8.{msisdn}"
        if await session.get(Account, number) is None:
            session.add(
                Account(
                    number=number,
                    kind=account_kind,
                    name=name,
                    code_hash=keyed_hash(t.key, ACCOUNT_CODE, number, account_code or code),
                    street="ul. Testowa 1",
                    postal_code="00-001",
                    city="Warszawa",
                    payment_method="PRZELEW",
                    billing_day=1,
                    opened=date(2020, 1, 1),
                    version=0,
                )
            )
            fee = next(p[2] for p in TARIFFS if p[0] == tariff)
            await session.flush()
            rows = list(invoice_rows(number, 1, fee, t.today, invoices, int(msisdn[-4:])))
            if rows:
                await session.execute(insert(InvoiceRow), rows)
        holder = await session.get(Account, number)
        assert holder is not None
        await session.execute(
            insert(Subscriber), [_subscriber_row(t.key, msisdn, code, name, number, tariff)]
        )
        await session.execute(
            insert(UsageRow),
            [
                {
                    "msisdn": msisdn,
                    "period_start": period_start(t.today, holder.billing_day),
                    "minutes_used": minutes_used,
                    "sms_used": sms_used,
                }
            ],
        )
        return 1

    await t.run(work)
