"""All subscriber-facing text, one table per language with the same keys (parity is tested).

Handlers never hold text: they pick a key and pass parameters already formatted by
:class:`Texts` (money as ``1 012,30 zł``, dates as ``24.11.2026``, instants in Warsaw time,
phone numbers as ``601 234 567``, counts with their plural form: ``1 punkt``, ``2 punkty``,
``5 punktów``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from types import MappingProxyType
from typing import Any

from backend.clock import LOCAL_TZ
from dialogs.catalogue.en import TEXTS as EN
from dialogs.catalogue.pl import TEXTS as PL

LANGUAGES = ("pl", "en")
TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType({"pl": PL, "en": EN})
# An abbreviation ending a sentence takes one stop ("zł/mies." + "." → "zł/mies."), not two.
_DOUBLE_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


class Texts:
    """The catalogue of one language, with the formats the texts use."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in TABLES else "pl"
        self._table = TABLES[self.lang]

    def __call__(self, key: str, /, **params: Any) -> str:
        # str.format_map (C) rather than string.Formatter (pure Python, ~5x the CPU per text);
        # the same syntax, and _Blank's __missing__ serves both.
        out = self._table[key].format_map(_Blank(params))
        return _DOUBLE_STOP.sub(".", out) if ".." in out else out

    def has(self, key: str) -> bool:
        return key in self._table

    @staticmethod
    def amount(grosze: int) -> str:
        """``1234567`` → ``12 345,67``: Polish groups of three, decimal comma."""
        sign = "-" if grosze < 0 else ""
        whole, part = divmod(abs(grosze), 100)
        return f"{sign}{whole:,}".replace(",", " ") + f",{part:02d}"

    @classmethod
    def money(cls, grosze: int) -> str:
        return f"{cls.amount(grosze)} zł"

    @staticmethod
    def number(msisdn: str) -> str:
        """A Polish MSISDN in national form (``48601234567`` → ``601 234 567``); others as given."""
        if len(msisdn) == 11 and msisdn.startswith("48") and msisdn.isdigit():
            n = msisdn[2:]
            return f"{n[:3]} {n[3:6]} {n[6:]}"
        return msisdn

    def count(self, n: int, word: str) -> str:
        """``n`` with the plural form the catalogue's ``plural.<word>`` gives for it."""
        one, few, many = self._table[f"plural.{word}"].split("|")
        return f"{n} {plural(n, one, few, many)}"

    @staticmethod
    def date(day: date) -> str:
        return day.strftime("%d.%m.%Y")

    @staticmethod
    def when(moment: datetime) -> str:
        local = moment.astimezone(LOCAL_TZ) if moment.tzinfo else moment
        return local.strftime("%H:%M %d.%m.%Y")


def plural(n: int, one: str, few: str, many: str) -> str:
    """Polish plural: 1 punkt, 2-4 punkty (but 12-14 punktów), 5-21 punktów, 22 punkty, …;
    English tables give ``few`` = ``many``."""
    n = abs(n)
    if n == 1:
        return one
    if n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14):
        return few
    return many


@cache
def texts(lang: str) -> Texts:
    return Texts(lang)


def placeholders(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)
