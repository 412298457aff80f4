"""Temporary passwords (hasło tymczasowe) for logging in to Idea24 on-line.

Eight characters from an alphabet without look-alikes (no 0/O/o, 1/l/I/i), valid 10 minutes,
single use; a new one supersedes the previous. Only the keyed hash is stored and the check is
constant-time. At most 3 are issued per number per hour (``RateLimited``); 5 wrong verifications
lock the number for 15 minutes (the 5th raises ``LockedOut``, later tries too until it ends).
A wrong, expired, superseded or used password — or an unknown number — verifies ``False``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import func, select, update

from backend.errors import LockedOut, NotFound, RateLimited
from backend.hashing import keyed_hash, matches
from backend.models import Subscriber, TempPassword
from backend.services.context import Context, audit, lock_subscriber

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz"
LENGTH = 8
VALID_FOR = timedelta(minutes=10)
ISSUE_WINDOW = timedelta(hours=1)
ISSUES_PER_WINDOW = 3
VERIFY_ATTEMPTS = 5
VERIFY_LOCKOUT = timedelta(minutes=15)
PURPOSE = "temp-password"


def new_password() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


async def issue_temp_password(ctx: Context, msisdn: str) -> str:
    now = ctx.now()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        recent = list(
            await session.scalars(
                select(TempPassword.created_at)
                .where(
                    TempPassword.msisdn == msisdn,
                    TempPassword.created_at > now - ISSUE_WINDOW,
                )
                .order_by(TempPassword.created_at)
            )
        )
        if len(recent) >= ISSUES_PER_WINDOW:
            retry = recent[-ISSUES_PER_WINDOW] + ISSUE_WINDOW - now
            raise RateLimited(max(1.0, retry.total_seconds()))
        await session.execute(
            update(TempPassword)
            .where(TempPassword.msisdn == msisdn, TempPassword.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        password = new_password()
        session.add(
            TempPassword(
                msisdn=msisdn,
                hash=keyed_hash(ctx.secret_key, PURPOSE, msisdn, password),
                created_at=now,
                expires_at=now + VALID_FOR,
            )
        )
        audit(session, ctx, msisdn, "temp_password_issued", "system", actor="system")
    return password


async def verify_temp_password(ctx: Context, msisdn: str, password: str) -> bool:
    now = ctx.now()
    locked: LockedOut | None = None
    async with ctx.sessions.begin() as session:
        try:
            sub = await lock_subscriber(session, msisdn)
        except NotFound:
            return False
        if sub.password_locked_until is not None and sub.password_locked_until > now:
            raise LockedOut(sub.password_locked_until)
        current = await session.scalar(
            select(TempPassword)
            .where(TempPassword.msisdn == msisdn, TempPassword.used_at.is_(None))
            .order_by(TempPassword.created_at.desc(), TempPassword.id.desc())
            .limit(1)
        )
        valid = (
            current is not None
            and current.expires_at > now
            and matches(ctx.secret_key, PURPOSE, msisdn, password.strip(), current.hash)
        )
        if valid and current is not None:
            current.used_at = now
            _reset(sub)
            audit(session, ctx, msisdn, "temp_password_used", "web")
            return True
        sub.password_failures += 1
        if sub.password_failures >= VERIFY_ATTEMPTS:
            sub.password_failures = 0
            sub.password_locked_until = now + VERIFY_LOCKOUT
            locked = LockedOut(sub.password_locked_until)
            audit(session, ctx, msisdn, "temp_password_locked", "system", actor="system")
    if locked is not None:
        raise locked
    return False


def _reset(sub: Subscriber) -> None:
    sub.password_failures = 0
    sub.password_locked_until = None


async def active_count(ctx: Context, msisdn: str) -> int:
    """Unused, unexpired passwords of a number (0 or 1); for tests and operators."""
    now = ctx.now()
    async with ctx.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(TempPassword)
            .where(
                TempPassword.msisdn == msisdn,
                TempPassword.used_at.is_(None),
                TempPassword.expires_at > now,
            )
        )
        return int(count or 0)
