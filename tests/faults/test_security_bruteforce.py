"""Temporary-password and subscriber-code brute force on PostgreSQL: 10,000 guesses, 0 successes.

Lockouts live in PostgreSQL (failure counters and lock ends on the subscriber row, taken with the
row lock every check starts with), so every process sharing the database sees them. Two Backends
on two engines stand for two ``idea24 serve`` processes; a third, in a new Python process started
after both closed, stands for a restart. The guesses alternate between the two backends and then
come from 8 concurrent guessers; the right secret is among them several times after the lock.
"""

from __future__ import annotations

import asyncio
import json
import sys
from asyncio.subprocess import PIPE
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.api import Backend
from backend.db import open_backend
from backend.errors import LockedOut, WrongCode
from backend.manage import seed
from backend.services.accounts import CODE_ATTEMPTS
from backend.services.passwords import ALPHABET, VERIFY_ATTEMPTS

pytestmark = pytest.mark.postgres

SECRET = "bruteforce-secret-key"
CODE_MSISDN, CODE = "48600000001", "111111"
PASSWORD_MSISDN = "48600000002"
GUESSES = 10_000  # in all: half at the subscriber code, half at the temporary password
WORKERS = 8
ROOT = Path(__file__).resolve().parents[2]

RESTARTED = """
import asyncio, json, sys
from backend.db import open_backend
from backend.errors import LockedOut, WrongCode

async def main(url, key, code_msisdn, code, password_msisdn, password):
    out = {}
    async with open_backend(url, key) as backend:
        try:
            await backend.check_subscriber_code(code_msisdn, code)
            out["code"] = "accepted"
        except LockedOut:
            out["code"] = "locked"
        except WrongCode:
            out["code"] = "wrong"
        try:
            out["password"] = "accepted" if await backend.verify_temp_password(
                password_msisdn, password) else "refused"
        except LockedOut:
            out["password"] = "locked"
    print(json.dumps(out))

asyncio.run(main(*sys.argv[1:]))
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def guess_code(backend: Backend, guess: str) -> str:
    try:
        await backend.check_subscriber_code(CODE_MSISDN, guess)
    except WrongCode:
        return "wrong"
    except LockedOut:
        return "locked"
    return "accepted"


async def guess_password(backend: Backend, guess: str) -> str:
    try:
        ok = await backend.verify_temp_password(PASSWORD_MSISDN, guess)
    except LockedOut:
        return "locked"
    return "accepted" if ok else "wrong"


def code_guesses(n: int) -> list[str]:
    guesses = [f"{i:06d}" for i in range(200_000, 200_000 + n)]
    for at in (10, n // 2, n - 1):
        guesses[at] = CODE  # the right code, well after the lock
    return guesses


def password_guesses(n: int, password: str) -> list[str]:
    guesses = [
        "".join(ALPHABET[(i * 7 + k * 13) % len(ALPHABET)] for k in range(8)) for i in range(n)
    ]
    guesses = [g if g != password else g[::-1] for g in guesses]
    for at in (10, n // 2, n - 1):
        guesses[at] = password
    return guesses


Attempt = Callable[[Backend, str], Awaitable[str]]


async def storm(
    backends: tuple[Backend, Backend], guesses: list[str], attempt: Attempt
) -> Counter[str]:
    """The first guesses one at a time alternating backends, the rest from concurrent workers."""
    outcomes: Counter[str] = Counter()
    for i, guess in enumerate(guesses[:10]):
        outcomes[await attempt(backends[i % 2], guess)] += 1
    rest = guesses[10:]

    async def worker(k: int) -> None:
        for guess in rest[k::WORKERS]:
            outcomes[await attempt(backends[k % 2], guess)] += 1

    await asyncio.gather(*(worker(k) for k in range(WORKERS)))
    return outcomes


async def test_ten_thousand_guesses_none_succeeds(own_postgres_url: str) -> None:
    url = own_postgres_url
    await seed(url, SECRET, demo=True)
    clock = Clock()
    half = GUESSES // 2
    async with (
        open_backend(url, SECRET, clock) as a,
        open_backend(url, SECRET, clock) as b,
    ):
        password = await a.issue_temp_password(PASSWORD_MSISDN)
        codes, passwords = await asyncio.gather(
            storm((a, b), code_guesses(half), guess_code),
            storm((b, a), password_guesses(half, password), guess_password),
        )
    # Subscriber code: 2 answered "wrong code", the 3rd wrong one locked, everything after
    # (the right code 3 times included) refused as locked.
    assert codes == {"wrong": CODE_ATTEMPTS - 1, "locked": half - CODE_ATTEMPTS + 1}, codes
    # Temporary password: 4 refused, the 5th locked, the rest (the right one 3 times) locked.
    assert passwords == {"wrong": VERIFY_ATTEMPTS - 1, "locked": half - VERIFY_ATTEMPTS + 1}
    # A restart: a new process on the same database still refuses the right secrets.
    args = [url, SECRET, CODE_MSISDN, CODE, PASSWORD_MSISDN, password]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RESTARTED, *args, cwd=ROOT, stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    restarted = json.loads(out.decode().strip().splitlines()[-1])
    assert restarted == {"code": "locked", "password": "locked"}
    # The lock is 15 minutes, not forever: afterwards the right code opens again.
    clock.now += timedelta(minutes=16)
    async with open_backend(url, SECRET, clock) as c:
        assert await guess_code(c, CODE) == "accepted"
        assert await guess_password(c, password) == "wrong"  # expired meanwhile (10 min)
        fresh = await c.issue_temp_password(PASSWORD_MSISDN)
        assert await guess_password(c, fresh) == "accepted"
    print(
        f"\nbrute force: {GUESSES} guesses over 2 backends + {WORKERS} concurrent guessers; "
        f"subscriber code {dict(codes)}, temporary password {dict(passwords)}; "
        f"0 successes (right secret refused 3 times each); after a restart in a new process: "
        f"{restarted}; 16 min later the right code opens"
    )
