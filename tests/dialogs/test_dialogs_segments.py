"""Every SMS part is money: each reply stays inside its segment budget, under each text policy.

Budget (``auto`` — the default — and ``transliterate``): at least 90 % of the replies of the walk
in one part, every confirmation prompt in one part, none above 3 parts. Under ``ucs2`` a Polish
letter costs a UCS-2 part of 70 characters: only "none above 3 parts" holds there.
"""

from __future__ import annotations

import asyncio

import pytest

from backend.seed import SERVICES, TARIFFS
from dialogs.catalogue import TABLES, placeholders, texts
from gateway.sms.text import POLICIES, Policy, encode_message
from tests.dialogs import walk
from tests.dialogs.walk import DOC, LONGEST_ADDRESS, LONGEST_AMOUNT, Row

MOST_PARTS = 3
ONE_PART_SHARE = 0.9
#: The policies a one-part budget holds under (ucs2 keeps Polish letters at 70 a part).
THRIFTY: tuple[Policy, ...] = ("auto", "transliterate")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    return asyncio.run(walk.walk_all(tmp_path_factory.mktemp("walk") / "walk.db"))


def test_the_walk_covers_both_languages_and_every_command(rows: list[Row]) -> None:
    assert {r.lang for r in rows} == {"pl", "en"}
    assert sum(r.confirm for r in rows) >= 20
    assert all(r.reply for r in rows), [r.command for r in rows if not r.reply]


@pytest.mark.parametrize("policy", POLICIES)
def test_no_reply_above_three_parts(rows: list[Row], policy: Policy) -> None:
    over = [(r.command, r.parts[policy]) for r in rows if r.parts[policy] > MOST_PARTS]
    assert not over


@pytest.mark.parametrize("policy", THRIFTY)
def test_every_confirmation_prompt_is_one_part(rows: list[Row], policy: Policy) -> None:
    over = [(r.command, r.reply) for r in rows if r.confirm and r.parts[policy] > 1]
    assert not over


@pytest.mark.parametrize("policy", THRIFTY)
def test_nine_replies_in_ten_are_one_part(rows: list[Row], policy: Policy) -> None:
    one = sum(1 for r in rows if r.parts[policy] == 1)
    assert one >= ONE_PART_SHARE * len(rows), walk.summary(rows)


def test_auto_costs_what_transliterate_costs_and_keeps_letters_when_free(rows: list[Row]) -> None:
    assert all(r.parts["auto"] == r.parts["transliterate"] for r in rows)
    kept = [r for r in rows if encode_message(r.reply, policy="auto")[0].data_coding == 8]
    assert kept, "auto never kept a Polish letter"
    assert all(len(r.reply) <= 70 for r in kept)


def test_the_subscriber_guide_shows_the_current_table(rows: list[Row]) -> None:
    """Rewrite it with ``.venv/bin/python -m tests.dialogs.walk`` when the catalogue changes."""
    doc = DOC.read_text()
    assert walk.with_section(doc, rows) == doc


# -- every catalogue text, by key, with the longest plausible parameters --------------------------

_t = texts("pl")
#: A fee or subscription: 5 digits (invoices, above, have 7).
LONGEST_FEE = 99_999
LONGEST_NAME = max([s["name"] for s in SERVICES] + [t[1] for t in TARIFFS], key=len)
LONGEST: dict[str, str] = {
    "amount": _t.money(LONGEST_AMOUNT),
    "fee": _t.money(LONGEST_FEE),
    "monthly_fee": _t.money(LONGEST_FEE),
    "monthly": _t("fee.monthly", amount=_t.money(LONGEST_FEE)),
    "name": LONGEST_NAME,
    "tariff": LONGEST_NAME,
    "method": "polecenie zapłaty",
    "address": LONGEST_ADDRESS,
    "numbers": "691 234 567, 692 345 678, 693 456 789",
    "number": "+44 7700 900123",
    "msisdn": "601 234 567",
    "account": "2.0000010",
    "reference": "ZL/2026/000123",
    "effective": "31.12.2026",
    "until": "31.12.2026",
    "start": "01.12.2026",
    "end": "31.12.2026",
    "due": "31.12.2026",
    "day": "31.12.2026",
    "joined": "31.12.2026",
    "month": "12.2026",
    "code": "POCZTAGLOSOWA",
    "example": "POCZTAGLOSOWA",
    "status": "w realizacji",
    "type": "Transfer of the contract",
    "kind": "powitalne",
    "points": "12 345 punktów",
    "digits": "8 cyfr",
    "password": "Ab3dEf7h",
    "word": "x" * 20,
    "description": max((s["description"] for s in SERVICES), key=len),
    "url": "idea24.example.pl/uslugi/pocztaglosowa",
    "activation": _t("service.activation", fee=_t.money(LONGEST_FEE)),
}


def _rendered() -> list[tuple[str, str, str]]:
    out = []
    for lang, table in TABLES.items():
        for key, template in table.items():
            names = placeholders(template)
            if key.startswith("ussd.") or not names <= set(LONGEST) | {"left", "minutes"}:
                continue  # screens (≤ 182, tested by the tree walk); lists (the dialog walk)
            params = {**{n: "9999" for n in names}, **{n: LONGEST[n] for n in names & set(LONGEST)}}
            if "monthly" in names:
                params["monthly"] = texts(lang)("fee.monthly", amount=LONGEST["fee"])
            out.append((lang, key, texts(lang)(key, **params)))
    return out


@pytest.mark.parametrize("policy", POLICIES)
def test_every_text_with_the_longest_parameters_is_at_most_three_parts(policy: Policy) -> None:
    over = [
        (lang, key)
        for lang, key, text in _rendered()
        if len(encode_message(text, policy=policy)) > MOST_PARTS
    ]
    assert not over


#: Changes of a whole business account, confirmed with the account code.
ACCOUNT_WIDE = ("address.quote", "payment.quote")


@pytest.mark.parametrize("policy", THRIFTY)
def test_every_quote_with_its_question_is_one_part(policy: Policy) -> None:
    over = []
    for lang, key, text in _rendered():
        if key.endswith(".quote"):
            asks = ["confirm.ask_sms"] + (
                ["confirm.ask_account_sms"] if key in ACCOUNT_WIDE else []
            )
            for ask in asks:
                prompt = text + "\n" + texts(lang)(ask)
                if len(encode_message(prompt, policy=policy)) > 1:
                    over.append((lang, key, prompt))
    assert not over
