"""Numbers of "Trzy i Ja" (exactly three) and "Przyjaciel" (exactly one).

Numbers are validated Polish numbers (phonenumbers), stored E.164 without ``+``, distinct, never
the subscriber's own. Setting numbers of an inactive service activates it (the activation fee is
quoted); changing numbers of an active one costs the service's change fee, except the first
setting after activation; the same numbers again change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from backend.errors import InvalidInput
from backend.models import ActiveService
from backend.numbers import parse_polish_number
from backend.records import Change, Favourites, FavouritesKind, Quote
from backend.services.context import Context, ServiceInfo, audit, get_subscriber, lock_subscriber
from backend.services.services import active_rows, catalogue_service, charge

KIND_TO_CODE = {"3ija": "3IJA", "przyjaciel": "PRZYJACIEL"}


def _service_code(kind: str) -> str:
    code = KIND_TO_CODE.get(kind.strip().lower())
    if code is None:
        raise InvalidInput("kind", "unknown", kind=kind)
    return code


def validate_numbers(msisdn: str, numbers: Sequence[str], expected: int) -> tuple[str, ...]:
    if len(numbers) != expected:
        raise InvalidInput("numbers", "count", expected=expected, given=len(numbers))
    parsed: list[str] = []
    for raw in numbers:
        number = parse_polish_number(raw, field="numbers")
        if number == msisdn:
            raise InvalidInput("numbers", "own_number", number=raw)
        if number in parsed:
            raise InvalidInput("numbers", "duplicate", number=raw)
        parsed.append(number)
    return tuple(parsed)


async def favourites(ctx: Context, msisdn: str) -> Favourites:
    async with ctx.sessions() as session:
        await get_subscriber(session, msisdn)
        active = await active_rows(session, msisdn)
    three = active.get("3IJA")
    friend = active.get("PRZYJACIEL")
    friend_numbers = list(friend.numbers or ()) if friend is not None else []
    return Favourites(
        three_active=three is not None,
        three=tuple(three.numbers or ()) if three is not None else (),
        friend_active=friend is not None,
        friend=friend_numbers[0] if friend_numbers else None,
    )


def _price(
    info: ServiceInfo, row: ActiveService | None, numbers: tuple[str, ...], today: date
) -> Quote:
    """What setting ``numbers`` on a service in state ``row`` does and costs."""
    if row is None:
        return Quote(
            "favourites", info.code, info.name, info.activation_fee, info.monthly_fee, today, True
        )
    current = tuple(row.numbers or ())
    if sorted(current) == sorted(numbers):
        return Quote("favourites", info.code, info.name, 0, None, today, False)
    fee = info.change_fee if current else 0
    return Quote("favourites", info.code, info.name, fee, None, today, True)


async def quote_favourites(
    ctx: Context, msisdn: str, kind: FavouritesKind | str, numbers: Sequence[str]
) -> Quote:
    info = await catalogue_service(ctx, _service_code(kind))
    valid = validate_numbers(msisdn, numbers, info.favourite_slots)
    async with ctx.sessions() as session:
        await get_subscriber(session, msisdn)
        row = await session.get(ActiveService, (msisdn, info.code))
        return _price(info, row, valid, ctx.today())


async def set_favourites(
    ctx: Context, msisdn: str, kind: FavouritesKind | str, numbers: Sequence[str], channel: str
) -> Change:
    info = await catalogue_service(ctx, _service_code(kind))
    valid = validate_numbers(msisdn, numbers, info.favourite_slots)
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        row = await session.get(ActiveService, (msisdn, info.code))
        quote = _price(info, row, valid, today)
        if not quote.changes:
            return Change("favourites", info.code, False, 0, today)
        if row is None:
            row = ActiveService(msisdn=msisdn, service_code=info.code, activated_at=ctx.now())
            session.add(row)
            kind_of_fee = "activation"
        else:
            kind_of_fee = "number_change"
        row.numbers = list(valid)
        charge(session, msisdn, quote.fee, kind_of_fee, info.code, ctx)
        audit(
            session,
            ctx,
            msisdn,
            "favourites",
            channel,
            service=info.code,
            fee=quote.fee,
            count=len(valid),
        )
    return Change("favourites", info.code, True, quote.fee, today)
