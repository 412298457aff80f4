"""``Backend``: what the dialogs and the runtime need of the subscriber domain, as a Protocol.

The dialogs code against this, never against the concrete :class:`backend.api.Backend` (the
SQLAlchemy facade), so a dialog can be driven by any object with these methods. Records and
errors are those of :mod:`backend.records` and :mod:`backend.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from backend.records import (
    Address,
    Change,
    ChangeRequest,
    CodeChannel,
    CodeGate,
    CodeScope,
    Favourites,
    Invoice,
    Letter,
    LetterType,
    Payment,
    PaymentMethodOption,
    Profit,
    ProfitTransaction,
    Quote,
    ServiceView,
    SubscriberInfo,
    Summary,
    Tariff,
    Usage,
)


class Backend(Protocol):
    """The subscriber domain's operations; MSISDNs are E.164 with or without a leading ``+``."""

    async def subscriber(self, msisdn: str) -> SubscriberInfo: ...

    # ``code_channel`` says which lockout a code check counts in: "handset" (SMPP, the SIM
    # proves the sender) or "aggregator" (USSD over HTTP); one never locks the other.

    async def is_subscriber(self, msisdn: str) -> bool: ...

    async def check_subscriber_code(
        self,
        msisdn: str,
        code: str,
        scope: CodeScope = "number",
        *,
        code_channel: CodeChannel = "handset",
    ) -> None: ...

    async def address(self, msisdn: str) -> Address: ...

    def parse_address(self, text: str) -> Address: ...

    async def change_address(
        self,
        msisdn: str,
        address: Address | str,
        channel: str,
        *,
        subscriber_code: str,
        code_channel: CodeChannel = "handset",
    ) -> Change:
        """An account-wide change: ``subscriber_code`` is checked in its transaction (the account
        code on a business account; raises ``WrongCode`` / ``LockedOut`` / ``NotAccountCode``)."""

    async def code_gate(
        self, msisdn: str, change: str, *, code_channel: CodeChannel = "handset"
    ) -> CodeGate:
        """Which code confirms ``change`` ("address", "payment_method", or another change) for
        ``msisdn`` ("account" for an account-wide change of a business account), and the end
        of that code's lockout if it is locked out now."""

    async def issue_temp_password(self, msisdn: str) -> str: ...

    async def verify_temp_password(self, msisdn: str, password: str) -> bool: ...

    async def summary(self, msisdn: str) -> Summary: ...

    async def usage(self, msisdn: str) -> Usage: ...

    async def last_invoice(self, msisdn: str) -> Invoice: ...

    async def invoices(self, msisdn: str, months: int = 12) -> list[Invoice]: ...

    async def payment(self, msisdn: str) -> Payment: ...

    async def request_payment_change(
        self,
        msisdn: str,
        method: str,
        channel: str,
        *,
        subscriber_code: str,
        code_channel: CodeChannel = "handset",
    ) -> ChangeRequest:
        """An account-wide change: ``subscriber_code`` as for :meth:`change_address`."""

    async def payment_methods(self) -> list[PaymentMethodOption]: ...

    async def tariff(self, msisdn: str) -> Tariff: ...

    async def tariffs(self) -> list[Tariff]: ...

    async def pending_tariff(self, msisdn: str) -> ChangeRequest | None: ...

    async def quote_tariff_change(self, msisdn: str, code: str) -> Quote: ...

    async def change_tariff(self, msisdn: str, code: str, channel: str) -> ChangeRequest: ...

    async def services(self, msisdn: str, include_all: bool = False) -> list[ServiceView]: ...

    async def service(self, msisdn: str, code: str) -> ServiceView: ...

    async def quote_activation(self, msisdn: str, code: str) -> Quote: ...

    async def activate(
        self,
        msisdn: str,
        code: str,
        channel: str,
        *,
        subscriber_code: str | None = None,
        code_channel: CodeChannel = "handset",
    ) -> Change:
        """With ``subscriber_code``: checked in the same transaction as the change (raises
        ``WrongCode`` / ``LockedOut`` like :meth:`check_subscriber_code`, changes nothing)."""

    async def quote_deactivation(self, msisdn: str, code: str) -> Quote: ...

    async def deactivate(
        self,
        msisdn: str,
        code: str,
        channel: str,
        *,
        subscriber_code: str | None = None,
        code_channel: CodeChannel = "handset",
    ) -> Change:
        """``subscriber_code`` as for :meth:`activate`."""

    async def favourites(self, msisdn: str) -> Favourites: ...

    async def quote_favourites(self, msisdn: str, kind: str, numbers: Sequence[str]) -> Quote: ...

    async def set_favourites(
        self, msisdn: str, kind: str, numbers: Sequence[str], channel: str
    ) -> Change: ...

    async def letter_types(self, kind: str) -> list[LetterType]: ...

    async def file_letter(
        self, msisdn: str, kind: str, type_code: str, data: str, description: str, channel: str
    ) -> Letter: ...

    async def profit(self, msisdn: str) -> Profit: ...

    async def profit_join(self, msisdn: str, channel: str) -> Profit: ...

    async def profit_history(self, msisdn: str) -> list[ProfitTransaction]: ...
