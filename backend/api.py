"""The ``Backend`` facade: the only way into the subscriber domain.

Dialogs and the HTTP API call these methods; each is one short transaction (a read, or a change
with its audit row) implemented in ``backend/services``. MSISDNs are E.164 without ``+``; a
leading ``+`` is tolerated. Secrets are taken as plain strings and never logged or stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.clock import Clock, as_clock
from backend.numbers import normalise_msisdn as _n
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
from backend.services import accounts, billing, care, favourites, passwords, profit, services
from backend.services.context import Context, NewDay


class Backend:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        secret_key: str | bytes,
        clock: Clock | Callable[[], datetime] | None = None,
        on_new_day: NewDay | None = None,
    ) -> None:
        """``clock``: a :class:`backend.clock.Clock` (or a function returning the time; the
        system clock when None). ``on_new_day``: see :meth:`Context.day`."""
        key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        self._ctx = Context(sessionmaker, key, as_clock(clock), on_new_day)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self._ctx.sessions

    @property
    def context(self) -> Context:
        return self._ctx

    def invalidate_cache(self) -> None:
        """Forget cached reference data (after the catalogue or tariffs were edited)."""
        self._ctx.invalidate_reference()

    # -- subscriber ------------------------------------------------------------------------------

    async def subscriber(self, msisdn: str) -> SubscriberInfo:
        return await accounts.subscriber(self._ctx, _n(msisdn))

    async def is_subscriber(self, msisdn: str) -> bool:
        return await accounts.is_subscriber(self._ctx, _n(msisdn))

    async def check_subscriber_code(
        self,
        msisdn: str,
        code: str,
        scope: CodeScope = "number",
        *,
        code_channel: CodeChannel = "handset",
    ) -> None:
        await accounts.check_subscriber_code(self._ctx, _n(msisdn), code, scope, code_channel)

    async def address(self, msisdn: str) -> Address:
        return await accounts.address(self._ctx, _n(msisdn))

    def parse_address(self, text: str) -> Address:
        return accounts.parse_address(text)

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
        parsed = accounts.parse_address(address) if isinstance(address, str) else address
        return await accounts.change_address(
            self._ctx, _n(msisdn), parsed, channel, subscriber_code, code_channel
        )

    async def code_gate(
        self, msisdn: str, change: str, *, code_channel: CodeChannel = "handset"
    ) -> CodeGate:
        """Which code confirms ``change`` ("address", "payment_method", or another change) for
        ``msisdn`` ("account" for an account-wide change of a business account), and the end
        of that code's lockout if it is locked out now."""
        return await accounts.code_gate(self._ctx, _n(msisdn), change, code_channel)

    # -- passwords -------------------------------------------------------------------------------

    async def issue_temp_password(self, msisdn: str) -> str:
        return await passwords.issue_temp_password(self._ctx, _n(msisdn))

    async def verify_temp_password(self, msisdn: str, password: str) -> bool:
        return await passwords.verify_temp_password(self._ctx, _n(msisdn), password)

    # -- billing and tariff ----------------------------------------------------------------------

    async def summary(self, msisdn: str) -> Summary:
        return await billing.summary(self._ctx, _n(msisdn))

    async def usage(self, msisdn: str) -> Usage:
        return await billing.usage(self._ctx, _n(msisdn))

    async def last_invoice(self, msisdn: str) -> Invoice:
        return await billing.last_invoice(self._ctx, _n(msisdn))

    async def invoices(self, msisdn: str, months: int = 12) -> list[Invoice]:
        return await billing.invoices(self._ctx, _n(msisdn), months)

    async def payment(self, msisdn: str) -> Payment:
        return await billing.payment(self._ctx, _n(msisdn))

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
        return await billing.request_payment_change(
            self._ctx, _n(msisdn), method, channel, subscriber_code, code_channel
        )

    async def payment_methods(self) -> list[PaymentMethodOption]:
        return await billing.payment_methods(self._ctx)

    async def tariff(self, msisdn: str) -> Tariff:
        return await billing.tariff(self._ctx, _n(msisdn))

    async def tariffs(self) -> list[Tariff]:
        return await billing.tariffs(self._ctx)

    async def pending_tariff(self, msisdn: str) -> ChangeRequest | None:
        return await billing.pending_tariff(self._ctx, _n(msisdn))

    async def quote_tariff_change(self, msisdn: str, code: str) -> Quote:
        return await billing.quote_tariff_change(self._ctx, _n(msisdn), code)

    async def change_tariff(self, msisdn: str, code: str, channel: str) -> ChangeRequest:
        return await billing.change_tariff(self._ctx, _n(msisdn), code, channel)

    # -- services --------------------------------------------------------------------------------

    async def services(self, msisdn: str, include_all: bool = False) -> list[ServiceView]:
        return await services.services(self._ctx, _n(msisdn), include_all)

    async def service(self, msisdn: str, code: str) -> ServiceView:
        return await services.service(self._ctx, _n(msisdn), code)

    async def quote_activation(self, msisdn: str, code: str) -> Quote:
        return await services.quote_activation(self._ctx, _n(msisdn), code)

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
        return await services.activate(
            self._ctx, _n(msisdn), code, channel, subscriber_code, code_channel
        )

    async def quote_deactivation(self, msisdn: str, code: str) -> Quote:
        return await services.quote_deactivation(self._ctx, _n(msisdn), code)

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
        return await services.deactivate(
            self._ctx, _n(msisdn), code, channel, subscriber_code, code_channel
        )

    # -- favourites ------------------------------------------------------------------------------

    async def favourites(self, msisdn: str) -> Favourites:
        return await favourites.favourites(self._ctx, _n(msisdn))

    async def quote_favourites(self, msisdn: str, kind: str, numbers: Sequence[str]) -> Quote:
        return await favourites.quote_favourites(self._ctx, _n(msisdn), kind, numbers)

    async def set_favourites(
        self, msisdn: str, kind: str, numbers: Sequence[str], channel: str
    ) -> Change:
        return await favourites.set_favourites(self._ctx, _n(msisdn), kind, numbers, channel)

    # -- customer care ---------------------------------------------------------------------------

    async def letter_types(self, kind: str) -> list[LetterType]:
        return await care.letter_types(self._ctx, kind)

    async def file_letter(
        self, msisdn: str, kind: str, type_code: str, data: str, description: str, channel: str
    ) -> Letter:
        return await care.file_letter(
            self._ctx, _n(msisdn), kind, type_code, data, description, channel
        )

    # -- Profit ----------------------------------------------------------------------------------

    async def profit(self, msisdn: str) -> Profit:
        return await profit.profit(self._ctx, _n(msisdn))

    async def profit_join(self, msisdn: str, channel: str) -> Profit:
        return await profit.profit_join(self._ctx, _n(msisdn), channel)

    async def profit_history(self, msisdn: str) -> list[ProfitTransaction]:
        return await profit.profit_history(self._ctx, _n(msisdn))
