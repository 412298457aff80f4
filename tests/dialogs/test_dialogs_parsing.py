"""Forgiving input: case, Polish letters, spaces, phone number spellings, dialled codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogs.errors import DialogInputError
from dialogs.parsing import dialled_path, fold, menu_number, parse_command, split_numbers
from dialogs.sms import KEYWORDS


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("hasło", "HASLO"),
        ("  Włącz   roaming ", "WLACZ ROAMING"),
        ("WŁĄCZ", "WLACZ"),
        ("wyłącz\tnoce", "WYLACZ NOCE"),
        ("Płatność zmień", "PLATNOSC ZMIEN"),
        ("Usługi wszystkie", "USLUGI WSZYSTKIE"),
        ("dołącz", "DOLACZ"),
        ("ŻÓŁĆ źś", "ZOLC ZS"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_parse_command_keeps_arguments_as_written() -> None:
    cmd = parse_command("  adres   ul. Długa 5/3,  00-950 Warszawa ", KEYWORDS)
    assert cmd is not None
    assert (cmd.name, cmd.lang, cmd.args) == ("address", "pl", "ul. Długa 5/3, 00-950 Warszawa")
    cmd = parse_command("Hasło", KEYWORDS)
    assert cmd is not None and (cmd.name, cmd.lang) == ("password", "pl")
    cmd = parse_command("password", KEYWORDS)
    assert cmd is not None and (cmd.name, cmd.lang) == ("password", "en")
    cmd = parse_command("info", KEYWORDS)
    assert cmd is not None and cmd.lang is None
    assert parse_command("blah blah", KEYWORDS) is None
    assert parse_command("   ", KEYWORDS) is None


@pytest.mark.parametrize(
    ("raw", "numbers"),
    [
        ("601234567", ["48601234567"]),
        ("+48601234567", ["48601234567"]),
        ("48601234567", ["48601234567"]),
        ("+48 601-234-567", ["48601234567"]),
        ("601 234 567", ["48601234567"]),
        ("0048601234567", ["48601234567"]),
        (
            "601234567 +48 602 345 678 48603456789",
            ["48601234567", "48602345678", "48603456789"],
        ),
        ("601-234-567, 602 345 678; 603456789", ["48601234567", "48602345678", "48603456789"]),
        ("", []),
    ],
)
def test_split_numbers(raw: str, numbers: list[str]) -> None:
    assert split_numbers(raw) == numbers


@pytest.mark.parametrize(
    ("raw", "key", "number", "digits"),
    [
        ("12345", "input.short_number", "12345", 5),
        ("601 234", "input.short_number", "601234", 6),
        ("601234567 999", "input.short_number", "999", 3),
        ("5011111 502222222", "input.short_number", "5011111", 7),
        ("6012345678", "input.long_number", "6012345678", 10),
        ("+48 601 234 5678", "input.bad_number", "+486012345678", None),
    ],
)
def test_split_numbers_says_what_a_fragment_is(
    raw: str, key: str, number: str, digits: int | None
) -> None:
    with pytest.raises(DialogInputError) as info:
        split_numbers(raw)
    assert info.value.key == key
    assert info.value.params["number"] == number
    assert info.value.params.get("digits") == digits


@pytest.mark.parametrize("raw", ["+44 7700 900123", "0044 7700 900123", "+1-212-555-0100"])
def test_split_numbers_refuses_foreign_numbers(raw: str) -> None:
    with pytest.raises(DialogInputError) as info:
        split_numbers("601234567 " + raw)
    assert info.value.key == "invalid.numbers.not_polish"
    assert info.value.params["number"].startswith(("+44", "+1"))


def test_dialled_path_and_menu_numbers() -> None:
    assert dialled_path("*100#") == []
    assert dialled_path(" *100*2# ") == ["2"]
    assert dialled_path("*100*3*1#") == ["3", "1"]
    assert dialled_path("3") is None
    assert dialled_path("*100*a#") is None
    assert menu_number(" 7 ") == 7
    assert menu_number("x") is None
    assert menu_number("1234") is None


@given(
    digits=st.from_regex(r"[5-8][0-9]{8}", fullmatch=True),
    prefix=st.sampled_from(["", "48", "+48", "+48 ", "0048"]),
    sep=st.sampled_from(["", " ", "-"]),
)
def test_any_spelling_of_a_mobile_number(digits: str, prefix: str, sep: str) -> None:
    spelled = prefix + sep.join([digits[:3], digits[3:6], digits[6:]])
    assert split_numbers(spelled) == ["48" + digits]
    assert split_numbers(f"{spelled}, {spelled}") == ["48" + digits] * 2


@given(st.text(max_size=40))
def test_fold_is_idempotent_ascii(text: str) -> None:
    once = fold(text)
    assert fold(once) == once
    assert once == once.upper()


@pytest.mark.parametrize(
    "raw",
    [
        "\u200bPAKIET",
        "\ufeffpakiet",
        "PA\u00adKIET",
        "\u202epakiet\u202c",
        "pakiet\x00",
        "\x07PAKIET",
    ],
)
def test_invisible_marks_and_control_characters_do_not_hide_a_keyword(raw: str) -> None:
    cmd = parse_command(raw, KEYWORDS)
    assert cmd is not None and cmd.name == "usage", raw


def test_a_rejected_number_is_shown_shortened() -> None:
    with pytest.raises(DialogInputError) as info:
        split_numbers("1" * 400)
    shown = info.value.params["number"]
    assert len(shown) <= 16 and shown.endswith("…")
