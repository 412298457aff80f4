"""All subscriber-facing text, one table per language with the same keys (parity is tested).

Handlers never hold text: they pick a key and pass parameters already formatted by
:class:`Texts` (money as ``12,30 zł``, dates as ``24.11.2026``, instants in Warsaw time).
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
    def money(grosze: int) -> str:
        sign = "-" if grosze < 0 else ""
        whole, part = divmod(abs(grosze), 100)
        return f"{sign}{whole},{part:02d} zł"

    @staticmethod
    def date(day: date) -> str:
        return day.strftime("%d.%m.%Y")

    @staticmethod
    def when(moment: datetime) -> str:
        local = moment.astimezone(LOCAL_TZ) if moment.tzinfo else moment
        return local.strftime("%H:%M %d.%m.%Y")


@cache
def texts(lang: str) -> Texts:
    return Texts(lang)


def placeholders(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)
