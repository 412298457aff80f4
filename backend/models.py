"""The subscriber domain as typed SQLAlchemy 2 tables.

Natural keys where the domain has them (MSISDN, account number, tariff and service codes): the
API is keyed by MSISDN, so most reads are one primary-key lookup, and bulk seeding needs no
generated ids. Instants are stored as naive UTC (``UTCDateTime``) so SQLite and PostgreSQL agree.
Every money-bearing or personal-data change writes an :class:`AuditEntry` in its transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


MSISDN = String(15)


# -- reference data (cached per Backend) -------------------------------------------------------


class TariffPlan(Base):
    __tablename__ = "tariff_plans"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    monthly_fee: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[int] = mapped_column(Integer)
    sms: Mapped[int] = mapped_column(Integer)
    business_only: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)


class CatalogueService(Base):
    __tablename__ = "services"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(Text)
    activation_fee: Mapped[int] = mapped_column(Integer)
    monthly_fee: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(200))
    settings_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class PaymentMethod(Base):
    __tablename__ = "payment_methods"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer, default=0)


class LetterTypeRow(Base):
    __tablename__ = "letter_types"

    kind: Mapped[str] = mapped_column(String(12), primary_key=True)
    code: Mapped[str] = mapped_column(String(4), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)


# -- accounts and subscribers ------------------------------------------------------------------


class Account(Base):
    """An individual account holds one number, a business account several; it owns the address,
    the payment method, the billing day and the invoices. ``code_hash`` is the account code;
    wrong entries of it through any of the account's numbers count in ``code_failures`` (a
    business account's code has its own lockout, apart from each number's subscriber code).
    The ``http_code_*`` pair counts the same code's wrong entries over HTTP (the USSD
    aggregator) apart, so they never lock the handset out (see :data:`records.CodeChannel`)."""

    __tablename__ = "accounts"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(120))
    code_hash: Mapped[str] = mapped_column(String(64))
    street: Mapped[str] = mapped_column(String(120))
    postal_code: Mapped[str] = mapped_column(String(6))
    city: Mapped[str] = mapped_column(String(60))
    payment_method: Mapped[str] = mapped_column(ForeignKey("payment_methods.code"))
    billing_day: Mapped[int] = mapped_column(Integer)
    opened: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=0)
    code_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    code_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    http_code_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    http_code_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Subscriber(Base):
    """One MSISDN. ``version`` is bumped by every change: the bump is the first statement of a
    change transaction, so it takes the row lock (PostgreSQL) or the write lock (SQLite).
    ``code_*`` counts wrong subscriber codes from the handset, ``http_code_*`` over HTTP."""

    __tablename__ = "subscribers"

    msisdn: Mapped[str] = mapped_column(MSISDN, primary_key=True)
    account_number: Mapped[str] = mapped_column(ForeignKey("accounts.number"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    tariff_code: Mapped[str] = mapped_column(ForeignKey("tariff_plans.code"))
    code_hash: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2), default="pl", server_default="pl")
    activated: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=0)
    code_failures: Mapped[int] = mapped_column(Integer, default=0)
    code_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    http_code_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    http_code_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_failures: Mapped[int] = mapped_column(Integer, default=0)
    password_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UsageRow(Base):
    __tablename__ = "usage"

    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), primary_key=True)
    period_start: Mapped[date] = mapped_column(Date, primary_key=True)
    minutes_used: Mapped[int] = mapped_column(Integer, default=0)
    sms_used: Mapped[int] = mapped_column(Integer, default=0)


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_account_period", "account_number", "period_start"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_number: Mapped[str] = mapped_column(ForeignKey("accounts.number"))
    number: Mapped[str] = mapped_column(String(30), unique=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    issued: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(Integer)
    paid: Mapped[bool] = mapped_column(Boolean, default=False)


class ActiveService(Base):
    """A service switched on for a number; ``numbers`` holds Trzy i Ja / Przyjaciel settings."""

    __tablename__ = "active_services"

    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), primary_key=True)
    service_code: Mapped[str] = mapped_column(ForeignKey("services.code"), primary_key=True)
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    numbers: Mapped[list[str]] = mapped_column(JSON, default=list)


class ChangeRequestRow(Base):
    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    effective: Mapped[date | None] = mapped_column(Date, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)


class LetterRow(Base):
    __tablename__ = "letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    type_code: Mapped[str] = mapped_column(String(4))
    data: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reference: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)


class ProfitMember(Base):
    __tablename__ = "profit_members"

    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), primary_key=True)
    joined: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer, default=0)


class ProfitTransactionRow(Base):
    __tablename__ = "profit_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), index=True)
    day: Mapped[date] = mapped_column(Date)
    points: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(12))
    reference: Mapped[str] = mapped_column(String(30), default="")


class TempPassword(Base):
    """Only the keyed hash of a temporary password is kept."""

    __tablename__ = "temp_passwords"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), index=True)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Charge(Base):
    """A one-off fee put on the next invoice (service activation, number change)."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(ForeignKey("subscribers.msisdn"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who changed what, over which channel, when. Never holds secrets."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    msisdn: Mapped[str] = mapped_column(MSISDN, index=True)
    actor: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    channel: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
