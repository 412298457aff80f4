"""Who a number belongs to, its correspondence address, and the secrets guarding changes.

The subscriber code (kod abonencki) guards one number; the account code (kod abonencki dla
konta) guards the changes of a whole business account (:data:`ACCOUNT_WIDE`: address, payment
method), made through any of its numbers, and is checked in the change's own transaction. An
individual account's code is its one number's subscriber code. Each code has its own lockout:
three wrong entries of a number's code lock that number's changes for 15 minutes; three wrong
entries of an account code, through whichever of the account's numbers, lock the account code
(the account row keeps the count, so guesses through every number count together); a business
account's code does not open one number's changes, so it cannot be guessed through them. A number's
own code given for an account-wide change is refused (``NotAccountCode``) without counting. The
attempt that reaches the limit raises ``LockedOut`` with the end time.

Each lockout is kept per channel class (:data:`records.CodeChannel`): wrong codes from the handset
(SMS and USSD over SMPP, where the SIM proves the sender) count in ``code_failures``, wrong codes
over HTTP (the USSD aggregator) in ``http_code_failures``, and a lockout in one class never refuses
the other — whoever reaches the aggregator cannot lock a subscriber out of their own handset.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.errors import (
    InvalidInput,
    LockedOut,
    NotAccountCode,
    NotFound,
    ServiceError,
    WrongCode,
)
from backend.hashing import keyed_hash, matches
from backend.models import Account, Subscriber
from backend.records import Address, Change, CodeChannel, CodeGate, CodeScope, SubscriberInfo
from backend.services import reads
from backend.services.context import (
    LOCK_SUBSCRIBER,
    Context,
    audit,
    audit_core,
    lock_subscriber,
    no_subscriber,
)

T = TypeVar("T")

CODE_ATTEMPTS = 3
CODE_LOCKOUT = timedelta(minutes=15)
SUBSCRIBER_CODE = "subscriber-code"
ACCOUNT_CODE = "account-code"
#: The changes that affect a whole account: on a business account confirmed by the account code.
ACCOUNT_WIDE = frozenset({"address", "payment_method"})

_POSTAL = re.compile(r"(?<![\d-])(\d{2}-\d{3})(?![\d-])")
_CITY = re.compile(r"[^\W\d_][^\W\d_ .'-]*(?:[ .'-]+[^\W\d_]+)*\.?")
_SPACES = re.compile(r"\s+")

_S = cast(Table, Subscriber.__table__)
_A = cast(Table, Account.__table__)
#: The subscriber lock (the same UPDATE) returning what a code check reads: the number's code
#: hash, failures, lockout end and its account's code hash (a scalar subquery: SQLite's
#: RETURNING may not name another table, a subquery may) — one statement, no SELECT after it.
LOCK_FOR_CODE = LOCK_SUBSCRIBER.returning(
    _S.c.code_hash,
    _S.c.code_failures,
    _S.c.code_locked_until,
    _S.c.http_code_failures,
    _S.c.http_code_locked_until,
    select(_A.c.code_hash)
    .where(_A.c.number == _S.c.account_number)
    .correlate(_S)
    .scalar_subquery()
    .label("account_code_hash"),
    _S.c.account_number,
    select(_A.c.kind)
    .where(_A.c.number == _S.c.account_number)
    .correlate(_S)
    .scalar_subquery()
    .label("account_kind"),
)
#: The columns of each channel class's failure count and lockout end (on both tables).
COUNTERS: dict[CodeChannel, tuple[str, str]] = {
    "handset": ("code_failures", "code_locked_until"),
    "aggregator": ("http_code_failures", "http_code_locked_until"),
}


def _outcome(table: Table, channel: CodeChannel, key: str, prefix: str) -> Any:
    failures, until = COUNTERS[channel]
    return (
        update(table)
        .values(
            {
                failures: bindparam(f"{prefix}failures", type_=table.c[failures].type),
                until: bindparam(f"{prefix}locked_until", type_=table.c[until].type),
            }
        )
        .where(table.c[key] == bindparam(f"outcome_{key}", type_=table.c[key].type))
    )


#: The failure count and lockout end after a check (under the lock taken by LOCK_FOR_CODE).
CODE_OUTCOME = {c: _outcome(_S, c, "msisdn", "") for c in COUNTERS}


#: The account lock (its ``version`` bumped: account-wide changes through two numbers of one
#: account are applied one after the other) returning what an account-code check reads.
LOCK_ACCOUNT_FOR_CODE = (
    update(_A)
    .values(version=_A.c.version + 1)
    .where(_A.c.number == bindparam("lock_account", type_=_A.c.number.type))
    .returning(
        _A.c.kind,
        _A.c.code_hash,
        _A.c.code_failures,
        _A.c.code_locked_until,
        _A.c.http_code_failures,
        _A.c.http_code_locked_until,
    )
)
#: The account code's failure count and lockout end after a check.
ACCOUNT_CODE_OUTCOME = {c: _outcome(_A, c, "number", "acc_") for c in COUNTERS}


def _counter(row: Any, channel: CodeChannel) -> tuple[int, datetime | None]:
    """``row``'s failure count and lockout end for ``channel``."""
    failures, until = COUNTERS[channel]
    return getattr(row, failures), getattr(row, until)


def account_code_hash(secret_key: bytes, account_number: str, code: str) -> str:
    return keyed_hash(secret_key, ACCOUNT_CODE, account_number, code)


async def _subscriber_row(ctx: Context, msisdn: str) -> Any:
    row = await ctx.reads.one(reads.SUBSCRIBER, msisdn=msisdn)
    if row is None:
        raise no_subscriber(msisdn)
    return row


async def subscriber(ctx: Context, msisdn: str) -> SubscriberInfo:
    row = await _subscriber_row(ctx, msisdn)
    return SubscriberInfo(row.msisdn, row.number, row.kind, row.name, row.language)


async def is_subscriber(ctx: Context, msisdn: str) -> bool:
    async with ctx.sessions() as session:
        found = await session.scalar(select(Subscriber.msisdn).where(Subscriber.msisdn == msisdn))
        return found is not None


async def check_subscriber_code(
    ctx: Context,
    msisdn: str,
    code: str,
    scope: CodeScope = "number",
    channel: CodeChannel = "handset",
) -> None:
    """Return if ``code`` opens ``scope``, else raise ``WrongCode`` / ``LockedOut``.

    For ``scope="number"`` the number's subscriber code is accepted (on an individual account
    its account code too, which is the same secret); for ``scope="account"`` only the account
    code (``NotAccountCode`` for the number's own code on a business account).
    """
    outcome = await ctx.change(_check_code, ctx, msisdn, code, scope, ctx.now(), channel)
    if outcome is not None:
        raise outcome


def with_code(
    conn: Connection,
    ctx: Context,
    msisdn: str,
    code: str,
    now: datetime,
    channel: CodeChannel,
    body: Callable[..., T],
    *args: Any,
) -> T | ServiceError:
    """The subscriber-code check and the change it guards as one transaction (see
    :meth:`Context.change`): ``body(conn, ctx, msisdn, *args)`` runs only when ``code`` opens
    the number; a wrong code is returned, with its failure count kept by the commit, for the
    caller to raise. One transaction instead of two for the hot confirmations (``TAK 123456``
    after ``WLACZ``): one BEGIN/COMMIT and one lock of the subscriber row fewer."""
    refused = _check_code(conn, ctx, msisdn, code, "number", now, channel)
    if refused is not None:
        return refused
    return body(conn, ctx, msisdn, *args)


def _check_code(
    conn: Connection,
    ctx: Context,
    msisdn: str,
    code: str,
    scope: CodeScope,
    now: datetime,
    channel: CodeChannel = "handset",
) -> ServiceError | None:
    """The code check's transaction (see :meth:`Context.change`): the lock returning the codes,
    then the failure count and lockout end if they change. Raises (rolled back) while locked
    out; returns the error to raise after the commit for a wrong code."""
    sub = conn.execute(LOCK_FOR_CODE, {"lock_msisdn": msisdn}).first()
    if sub is None:
        raise no_subscriber(msisdn)
    if scope == "account":
        account = conn.execute(LOCK_ACCOUNT_FOR_CODE, {"lock_account": sub.account_number}).first()
        if account is None:
            raise NotFound("no account", what="account")
        if account.kind == "business":
            return _check_account_code(conn, ctx, msisdn, code, sub, account, now, channel)
    before = _counter(sub, channel)
    if before[1] is not None and before[1] > now:
        raise LockedOut(before[1])
    if sub.account_code_hash is None:
        raise NotFound("no account", what="account")
    key = ctx.secret_key
    candidate = code.strip()
    ok = scope == "number" and matches(key, SUBSCRIBER_CODE, msisdn, candidate, sub.code_hash)
    if not ok and (scope == "account" or sub.account_kind != "business"):
        # An individual account's code is its number's. A business account's code does not open
        # one number's changes: guesses at it would count per number, N numbers × 3 tries.
        ok = matches(key, ACCOUNT_CODE, sub.account_number, candidate, sub.account_code_hash)
    failures, locked_until = before
    outcome: ServiceError | None = None
    if ok:
        failures, locked_until = 0, None
    else:
        failures += 1
        if failures >= CODE_ATTEMPTS:
            failures, locked_until = 0, now + CODE_LOCKOUT
            outcome = LockedOut(locked_until)
            audit_core(conn, ctx, msisdn, "code_locked", "system", actor="system")
        else:
            outcome = WrongCode(CODE_ATTEMPTS - failures)
    if (failures, locked_until) != before:
        params = {"failures": failures, "locked_until": locked_until, "outcome_msisdn": msisdn}
        conn.execute(CODE_OUTCOME[channel], params)
    return outcome


def _check_account_code(
    conn: Connection,
    ctx: Context,
    msisdn: str,
    code: str,
    sub: Any,
    account: Any,
    now: datetime,
    channel: CodeChannel,
) -> ServiceError | None:
    """:func:`_check_code` for a business account's code: its own count and lockout (per
    channel class), on the account row (locked by the caller), whichever number the guess came
    through."""
    before = _counter(account, channel)
    if before[1] is not None and before[1] > now:
        raise LockedOut(before[1], scope="account")
    key, candidate = ctx.secret_key, code.strip()
    failures, locked_until = before
    outcome: ServiceError | None = None
    if matches(key, ACCOUNT_CODE, sub.account_number, candidate, account.code_hash):
        failures, locked_until = 0, None
    elif matches(key, SUBSCRIBER_CODE, msisdn, candidate, sub.code_hash):
        return NotAccountCode("a number's code for an account-wide change")
    else:
        failures += 1
        if failures >= CODE_ATTEMPTS:
            failures, locked_until = 0, now + CODE_LOCKOUT
            outcome = LockedOut(locked_until, scope="account")
            audit_core(conn, ctx, msisdn, "account_code_locked", "system", actor="system")
        else:
            outcome = WrongCode(CODE_ATTEMPTS - failures, scope="account")
    if (failures, locked_until) != before:
        params = {
            "acc_failures": failures,
            "acc_locked_until": locked_until,
            "outcome_number": sub.account_number,
        }
        conn.execute(ACCOUNT_CODE_OUTCOME[channel], params)
    return outcome


async def account_code_in(
    session: AsyncSession, ctx: Context, msisdn: str, code: str, channel: CodeChannel = "handset"
) -> ServiceError | None:
    """The ``scope="account"`` code check as the first statements of ``session``'s transaction
    (an account-wide change): ``None`` when it opens, else the error to raise after the commit
    (which keeps the failure count); raises ``LockedOut`` (rolled back) while locked out."""
    now = ctx.now()
    return await session.run_sync(
        lambda s: _check_code(s.connection(), ctx, msisdn, code, "account", now, channel)
    )


async def code_gate(
    ctx: Context, msisdn: str, change: str, channel: CodeChannel = "handset"
) -> CodeGate:
    """Which code confirms ``change`` (a name from :data:`ACCOUNT_WIDE`, or any other change)
    for ``msisdn`` — the account code for an account-wide change of a business account — and
    the end of that code's lockout (for ``channel``) if it is locked out now. One read."""
    row = await ctx.reads.one(reads.CODE_GATE, msisdn=msisdn)
    if row is None:
        raise no_subscriber(msisdn)
    account = change in ACCOUNT_WIDE and row.kind == "business"
    http = channel == "aggregator"
    if account:
        until = row.http_account_locked_until if http else row.account_locked_until
    else:
        until = row.http_number_locked_until if http else row.number_locked_until
    if until is not None and until.tzinfo is None:  # asyncpg gives the stored naive UTC
        until = until.replace(tzinfo=UTC)
    now = ctx.now()
    return CodeGate("account" if account else "number", until if until and until > now else None)


async def address(ctx: Context, msisdn: str) -> Address:
    row = await _subscriber_row(ctx, msisdn)
    return Address(row.street, row.postal_code, row.city)


def parse_address(text: str) -> Address:
    """``"ul. Długa 5/3, 00-950 Warszawa"`` (or ``"00-950 Warszawa, ul. Długa 5/3"``)."""
    clean = _SPACES.sub(" ", text).strip()
    found = _POSTAL.search(clean)
    if found is None:
        reason = (
            "format" if re.search(r"\d{5}|\d{2} \d{3}|\d{1,3} ?- ?\d{2,4}", clean) else "missing"
        )
        raise InvalidInput("postal_code", reason)
    before, after = clean[: found.start()], clean[found.end() :]
    city, _, rest = after.partition(",")
    street = ", ".join(p for p in (before.strip(" ,"), rest.strip(" ,")) if p)
    return validate_address(Address(street, found.group(1), city.strip(" ,")))


def validate_address(candidate: Address) -> Address:
    street = _SPACES.sub(" ", candidate.street).strip(" ,")
    city = _SPACES.sub(" ", candidate.city).strip(" ,")
    postal = candidate.postal_code.strip()
    if not re.fullmatch(r"\d{2}-\d{3}", postal):
        raise InvalidInput("postal_code", "format")
    if not city:
        raise InvalidInput("city", "missing")
    if len(city) > 40 or not _CITY.fullmatch(city):
        raise InvalidInput("city", "invalid")
    if not street or not re.search(r"[^\W\d_]{2}", street):
        raise InvalidInput("street", "missing")
    if not re.search(r"\d", street):
        raise InvalidInput("street", "no_number")
    if len(street) > 120:
        raise InvalidInput("street", "too_long")
    return Address(street, postal, city)


async def lock_account(session: AsyncSession, number: str) -> Account:
    """Serialise account-wide changes made through different numbers of one account."""
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Account)
            .where(Account.number == number)
            .values(version=Account.version + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount == 0:
        raise NotFound("no account", what="account")
    account = await session.get(Account, number, populate_existing=True)
    assert account is not None
    return account


async def change_address(
    ctx: Context,
    msisdn: str,
    new: Address,
    channel: str,
    code: str,
    code_channel: CodeChannel = "handset",
) -> Change:
    """The account's address, after ``code`` opened it (the account code on a business account)
    in the same transaction."""
    new = validate_address(new)
    today = ctx.today()
    change = Change("address", "", False, 0, today)
    async with ctx.sessions.begin() as session:
        refused = await account_code_in(session, ctx, msisdn, code, code_channel)
        if refused is None:
            sub = await lock_subscriber(session, msisdn)
            account = await lock_account(session, sub.account_number)
            if Address(account.street, account.postal_code, account.city) != new:
                account.street, account.postal_code = new.street, new.postal_code
                account.city = new.city
                audit(session, ctx, msisdn, "address", channel, account=account.number)
                change = Change("address", "", True, 0, today)
    if refused is not None:
        raise refused
    return change
