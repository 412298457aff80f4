"""gateway.sms.msisdn: whatever a peer sends becomes E.164 digits without ``+``, or InvalidInput."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.errors import InvalidInput
from gateway.sms.msisdn import normalise_msisdn


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("48600000001", "48600000001"),
        ("600000001", "48600000001"),
        ("+48 600-000-001", "48600000001"),
        ("0048600000001", "48600000001"),
        (" (48) 600.000.001 ", "48600000001"),
        ("+4915112345678", "4915112345678"),
        ("12345678", "12345678"),
    ],
)
def test_forms_of_one_number(raw: str, expected: str) -> None:
    assert normalise_msisdn(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "IDEA24", "６００000001", "1234567", "1" * 16, "++48600000001"]
)
def test_not_a_number(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_msisdn(raw)


def test_nine_digits_get_the_country_code_only_for_poland() -> None:
    assert normalise_msisdn("600000001", "49") == "600000001"


_SEPARATORS = re.compile(r"[\s\-().]")


def _reference(raw: str, country_code: str) -> str | None:
    """The rule as first written (separators always removed by the regex); None = invalid."""
    text = _SEPARATORS.sub("", raw.strip())
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) == 9 and country_code == "48":
        text = country_code + text
    if not 8 <= len(text) <= 15:
        return None
    return text


@given(
    st.text(st.sampled_from("0123456789+ -().\t\n\u00a0６aA"), max_size=20),
    st.sampled_from(["48", "49"]),
)
def test_same_answer_as_the_regex_first_rule(raw: str, country_code: str) -> None:
    try:
        got: str | None = normalise_msisdn(raw, country_code)
    except InvalidInput:
        got = None
    assert got == _reference(raw, country_code)
