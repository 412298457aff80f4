"""Subscriber numbers at the edges: whatever a peer sends becomes E.164 digits without ``+``."""

from __future__ import annotations

import re

from backend.errors import InvalidInput

_SEPARATORS = re.compile(r"[\s\-().]")


def normalise_msisdn(raw: str, country_code: str = "48") -> str:
    """``+48 600-000-001``, ``0048600000001``, ``600000001`` → ``48600000001``.

    Edges (SMPP addresses, HTTP APIs) only need digits in international form; validating a
    number as a real Polish number is the backend's job (phonenumbers) where it matters.
    """
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):  # only then can there be separators to drop
        text = _SEPARATORS.sub("", text)
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not (text.isascii() and text.isdigit()):  # "６００…" is a digit to Python, not to SMPP
        raise InvalidInput("msisdn", "a phone number has only digits, e.g. 48600000001")
    if len(text) == 9 and country_code == "48":
        text = country_code + text
    if not 8 <= len(text) <= 15:
        raise InvalidInput("msisdn", "a phone number has 9 digits, or 11 with 48 in front")
    return text
