"""The frozen records the :class:`backend.api.Backend` returns.

Callers (dialogs, HTTP API) never see ORM objects: these records are detached, immutable and safe
to keep after the transaction. Money is ``int`` grosze, calendar days are ``datetime.date``,
instants are aware UTC ``datetime``. Codes (``kind``, ``status``, ``action``) are English
identifiers the dialogs' catalogue words for the subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Channel = Literal["sms", "ussd", "web", "api", "system"]
FavouritesKind = Literal["3ija", "przyjaciel"]
LetterKind = Literal["zlecenie", "reklamacja"]
CodeScope = Literal["number", "account"]
#: Which lockout a code check counts in: "handset" (SMS and USSD over SMPP: the SIM proves the
#: sender) or "aggregator" (USSD over HTTP). Wrong codes in one never lock the other.
CodeChannel = Literal["handset", "aggregator"]


@dataclass(frozen=True, slots=True)
class CodeGate:
    """Which code confirms a change (``scope``) and, if it is locked out now, until when."""

    scope: CodeScope
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class SubscriberInfo:
    msisdn: str
    account_number: str
    account_kind: str  # "individual" (Idea dla Ciebie) | "business" (Idea dla Firm)
    name: str
    language: str


@dataclass(frozen=True, slots=True)
class Tariff:
    code: str
    name: str
    monthly_fee: int
    minutes: int
    sms: int
    business_only: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Bundle use in the current billing period (``period_end`` inclusive)."""

    msisdn: str
    period_start: date
    period_end: date
    minutes_included: int
    minutes_used: int
    sms_included: int
    sms_used: int

    @property
    def minutes_left(self) -> int:
        return max(0, self.minutes_included - self.minutes_used)

    @property
    def sms_left(self) -> int:
        return max(0, self.sms_included - self.sms_used)


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    period_start: date
    period_end: date
    issued: date
    due_date: date
    amount: int
    paid: bool


@dataclass(frozen=True, slots=True)
class Summary:
    """The first screen: who, which account, which tariff, what was billed, what is used."""

    msisdn: str
    account_number: str
    name: str
    tariff: Tariff
    last_invoice: Invoice | None
    usage: Usage


@dataclass(frozen=True, slots=True)
class PaymentMethodOption:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A request customer care or billing completes later (payment method, tariff)."""

    reference: str
    kind: str  # "payment_method" | "tariff"
    value: str
    status: str  # "pending" | "done" | "cancelled"
    created: datetime
    effective: date | None


@dataclass(frozen=True, slots=True)
class Payment:
    method: PaymentMethodOption
    period_start: date
    period_end: date
    pending: ChangeRequest | None


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A catalogue service as one subscriber sees it (``active``, ``numbers`` if it has any)."""

    code: str
    name: str
    description: str
    activation_fee: int
    monthly_fee: int
    url: str
    active: bool
    numbers: tuple[str, ...] = ()
    settings_schema: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Quote:
    """What a change would do and cost, told before the subscriber confirms it.

    ``changes`` is False when the change is already in effect (confirming it does nothing and
    charges nothing). ``fee`` is charged once on confirmation; ``monthly_fee`` is the new recurring
    fee (``None`` when the recurring fee does not change).
    """

    action: str  # "activate" | "deactivate" | "favourites" | "tariff"
    code: str
    name: str
    fee: int
    monthly_fee: int | None
    effective: date
    changes: bool


@dataclass(frozen=True, slots=True)
class Change:
    """A change applied: what, whether anything changed, the fee charged, when it takes effect."""

    action: str
    code: str
    changed: bool
    fee: int
    effective: date


@dataclass(frozen=True, slots=True)
class Favourites:
    """Numbers of "Trzy i Ja" (up to three) and "Przyjaciel" (one), E.164 without ``+``."""

    three_active: bool
    three: tuple[str, ...]
    friend_active: bool
    friend: str | None


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    postal_code: str
    city: str

    def __str__(self) -> str:
        return f"{self.street}, {self.postal_code} {self.city}"


@dataclass(frozen=True, slots=True)
class LetterType:
    kind: str
    code: str  # short, usable as a menu number
    name: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Letter:
    reference: str  # ZL/2026/000123, RK/2026/000124
    kind: str
    type_code: str
    type_name: str
    data: str
    description: str
    status: str  # "received" | "in_progress" | "closed"
    created: datetime


@dataclass(frozen=True, slots=True)
class Profit:
    member: bool
    points: int
    joined: date | None


@dataclass(frozen=True, slots=True)
class ProfitTransaction:
    day: date
    points: int  # negative when spent
    kind: str  # "welcome" | "invoice" | "bonus" | "redeem"
    reference: str
