"""Phone numbers as the backend stores them: E.164 without ``+`` (``48601234567``).

Subscribers type favourite numbers every way a handset allows — ``601234567``,
``+48 601 234 567``, ``48-601-234-567``, ``0048601234567`` — so separators are dropped first and a
bare ``48`` country prefix is recognised before phonenumbers validates the result as Polish.
"""

from __future__ import annotations

import re

import phonenumbers

from backend.errors import InvalidInput

_SEPARATORS = re.compile(r"[\s\-./()]+")


def normalise_msisdn(msisdn: str) -> str:
    """The key the API is called with: digits only, no ``+``."""
    return msisdn.strip().lstrip("+")


def parse_polish_number(text: str, field: str = "number") -> str:
    """A valid Polish number as E.164 without ``+``, else ``InvalidInput(field, "invalid")``."""
    raw = _SEPARATORS.sub("", text.strip())
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif raw.isdigit() and len(raw) == 11 and raw.startswith("48"):
        raw = "+" + raw
    if not re.fullmatch(r"\+?\d{9,15}", raw):
        raise InvalidInput(field, "invalid", number=text)
    try:
        parsed = phonenumbers.parse(raw, "PL")
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(field, "invalid", number=text) from exc
    if parsed.country_code != 48:
        raise InvalidInput(field, "not_polish", number=text)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(field, "invalid", number=text)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
