"""Temporary passwords and subscriber / account codes: every rule and error, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from backend.api import Backend
from backend.errors import LockedOut, NotAccountCode, NotFound, RateLimited, WrongCode
from backend.models import AuditEntry, Subscriber, TempPassword
from backend.services.passwords import ALPHABET, active_count


async def test_password_shape_single_use_and_hashed(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    password = await backend.issue_temp_password(msisdn)
    assert len(password) == 8 and set(password) <= set(ALPHABET)
    assert not set(password) & set("0O1lIio")
    async with backend.sessionmaker() as session:
        stored = list(
            await session.scalars(select(TempPassword.hash).where(TempPassword.msisdn == msisdn))
        )
    assert stored and password not in stored[0] and len(stored[0]) == 64
    assert await backend.verify_temp_password(msisdn, password) is True
    assert await backend.verify_temp_password(msisdn, password) is False  # single use
    assert await active_count(backend.context, msisdn) == 0


async def test_password_expires_after_ten_minutes(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh()
    password = await backend.issue_temp_password(msisdn)
    clock.advance(minutes=10, seconds=1)
    assert await backend.verify_temp_password(msisdn, password) is False
    fresh_one = await backend.issue_temp_password(msisdn)
    clock.advance(minutes=9, seconds=59)
    assert await backend.verify_temp_password(msisdn, fresh_one) is True


async def test_new_password_supersedes_old(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    old = await backend.issue_temp_password(msisdn)
    new = await backend.issue_temp_password(msisdn)
    assert await backend.verify_temp_password(msisdn, old) is False
    assert await backend.verify_temp_password(msisdn, new) is True


async def test_three_passwords_per_hour(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh()
    for _ in range(3):
        await backend.issue_temp_password(msisdn)
        clock.advance(minutes=10)
    with pytest.raises(RateLimited) as info:
        await backend.issue_temp_password(msisdn)
    assert 0 < info.value.retry_after <= 30 * 60
    clock.advance(seconds=info.value.retry_after)
    await backend.issue_temp_password(msisdn)


async def test_unknown_number(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.issue_temp_password("48999999998")
    assert await backend.verify_temp_password("48999999998", "ABCDEFGH") is False


async def test_five_wrong_verifications_lock_for_15_minutes(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    msisdn = await fresh()
    password = await backend.issue_temp_password(msisdn)
    for _ in range(4):
        assert await backend.verify_temp_password(msisdn, "WRONGPW2") is False
    with pytest.raises(LockedOut) as info:
        await backend.verify_temp_password(msisdn, "WRONGPW3")
    assert info.value.until == clock.now + timedelta(minutes=15)
    with pytest.raises(LockedOut):  # even the right password, while locked
        await backend.verify_temp_password(msisdn, password)
    clock.advance(minutes=15, seconds=1)
    # the lock ended; the password itself expired meanwhile
    assert await backend.verify_temp_password(msisdn, password) is False
    again = await backend.issue_temp_password(msisdn)
    assert await backend.verify_temp_password(msisdn, again) is True


async def test_success_resets_the_failure_count(backend: Backend, fresh: Any) -> None:
    msisdn = await fresh()
    for _ in range(2):
        password = await backend.issue_temp_password(msisdn)
        for _ in range(4):
            assert await backend.verify_temp_password(msisdn, "WRONGPW2") is False
        assert await backend.verify_temp_password(msisdn, password) is True


async def test_subscriber_code_three_wrong_lock(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh(code="482915")
    with pytest.raises(WrongCode) as first:
        await backend.check_subscriber_code(msisdn, "000000")
    assert first.value.attempts_left == 2
    with pytest.raises(WrongCode) as second:
        await backend.check_subscriber_code(msisdn, "111111")
    assert second.value.attempts_left == 1
    with pytest.raises(LockedOut) as locked:
        await backend.check_subscriber_code(msisdn, "222222")
    assert locked.value.until == clock.now + timedelta(minutes=15)
    with pytest.raises(LockedOut):
        await backend.check_subscriber_code(msisdn, "482915")
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(LockedOut):
        await backend.check_subscriber_code(msisdn, "482915")
    clock.advance(seconds=1)
    await backend.check_subscriber_code(msisdn, " 482915 ")
    with pytest.raises(WrongCode) as after:
        await backend.check_subscriber_code(msisdn, "000000")
    assert after.value.attempts_left == 2
    async with backend.sessionmaker() as session:
        sub = await session.get(Subscriber, msisdn)
        assert sub is not None and "482915" not in sub.code_hash
        actions = set(
            await session.scalars(select(AuditEntry.action).where(AuditEntry.msisdn == msisdn))
        )
    assert "code_locked" in actions


async def test_account_code_guards_account_wide_changes(backend: Backend, fresh: Any) -> None:
    account = "8.TESTFIRM" + (await fresh(code="555001"))[-4:]
    first = await fresh(
        code="555002",
        account=account,
        account_kind="business",
        account_code="909090",
        tariff="FIRMA",
    )
    second = await fresh(code="555003", account=account)
    assert (await backend.subscriber(first)).account_kind == "business"
    assert (await backend.subscriber(second)).account_number == account
    await backend.check_subscriber_code(first, "555002")  # number scope: own code
    with pytest.raises(WrongCode):  # the account code does not open one number's change
        await backend.check_subscriber_code(second, "909090")
    await backend.check_subscriber_code(first, "909090", scope="account")
    with pytest.raises(NotAccountCode):  # a number's code does not open the account
        await backend.check_subscriber_code(first, "555002", scope="account")
    with pytest.raises(WrongCode):  # nor another number's
        await backend.check_subscriber_code(first, "555003")
    # a business tariff is allowed on a business account
    quote = await backend.quote_tariff_change(second, "FIRMA")
    assert quote.changes
