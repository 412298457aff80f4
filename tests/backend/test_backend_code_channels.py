"""Code lockouts per channel class, on SQLite and PostgreSQL: wrong codes over HTTP (the USSD
aggregator, ``code_channel="aggregator"``) lock only the aggregator path, never the handset's
SMS and SMPP USSD (the SIM proves the sender); wrong codes from the handset lock the handset
path and not HTTP — each class keeps its own count of 3 and its own 15 minutes. Likewise for a
business account's code, per account."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from backend.api import Backend
from backend.errors import LockedOut, WrongCode
from backend.models import Account, Subscriber
from backend.services.accounts import CODE_ATTEMPTS, CODE_LOCKOUT
from dialogs import build_dialogs
from fsm.runtime import Runtime
from fsm.store import MemoryStore
from gateway.metrics import Metrics
from gateway.web.guards import CodeGuard, GuardedBackend
from tests.dialogs.conftest import Phone

ACCOUNT_CODE = "909090"


async def _row(backend: Backend, model: Any, key: str) -> Any:
    async with backend.sessionmaker() as session:
        return await session.get(model, key, populate_existing=True)


async def _lock(call: Any) -> LockedOut:
    """``call()`` CODE_ATTEMPTS times with a wrong code: WrongCode, then LockedOut."""
    for _ in range(CODE_ATTEMPTS - 1):
        with pytest.raises(WrongCode):
            await call()
    with pytest.raises(LockedOut) as locked:
        await call()
    return locked.value


async def test_wrong_codes_over_http_never_lock_the_handset(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    msisdn = await fresh(code="246810")
    locked = await _lock(
        lambda: backend.check_subscriber_code(msisdn, "000000", code_channel="aggregator")
    )
    assert locked.until == clock.now + CODE_LOCKOUT
    with pytest.raises(LockedOut):  # the aggregator path is locked, even for the right code
        await backend.activate(
            msisdn, "ROAMING", "ussd", subscriber_code="246810", code_channel="aggregator"
        )
    gate = await backend.code_gate(msisdn, "tariff", code_channel="aggregator")
    assert gate.locked_until == clock.now + CODE_LOCKOUT
    assert (await backend.code_gate(msisdn, "tariff")).locked_until is None
    sub = await _row(backend, Subscriber, msisdn)
    assert (sub.code_failures, sub.code_locked_until) == (0, None)
    assert (sub.http_code_failures, sub.http_code_locked_until) == (0, clock.now + CODE_LOCKOUT)
    # the handset: a wrong code counts from 0 in its own count, the right one works
    with pytest.raises(WrongCode) as wrong:
        await backend.check_subscriber_code(msisdn, "000000")
    assert wrong.value.attempts_left == CODE_ATTEMPTS - 1
    assert (await backend.activate(msisdn, "ROAMING", "sms", subscriber_code="246810")).changed
    clock.advance(seconds=CODE_LOCKOUT.total_seconds() + 1)
    await backend.check_subscriber_code(msisdn, "246810", code_channel="aggregator")


async def test_wrong_codes_from_the_handset_do_not_lock_http(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    msisdn = await fresh(code="135790")
    await _lock(lambda: backend.deactivate(msisdn, "ROAMING", "sms", subscriber_code="000000"))
    with pytest.raises(LockedOut):
        await backend.check_subscriber_code(msisdn, "135790")
    await backend.check_subscriber_code(msisdn, "135790", code_channel="aggregator")
    sub = await _row(backend, Subscriber, msisdn)
    assert (sub.http_code_failures, sub.http_code_locked_until) == (0, None)
    assert sub.code_locked_until == clock.now + CODE_LOCKOUT


async def test_the_account_code_is_locked_per_channel_class(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    account = f"8.F{secrets.token_hex(4)}"
    first = await fresh(
        code="555002", account=account, account_kind="business", account_code=ACCOUNT_CODE
    )
    second = await fresh(code="555003", account=account)
    new = backend.parse_address("ul. Kanałowa 4, 00-005 Warszawa")
    # three wrong account codes over HTTP, through both numbers: the account's HTTP path locks
    calls = iter((first, second, first))
    locked = await _lock(
        lambda: backend.change_address(
            next(calls), new, "ussd", subscriber_code="000001", code_channel="aggregator"
        )
    )
    assert locked.scope == "account"
    with pytest.raises(LockedOut):
        await backend.request_payment_change(
            second, "KARTA", "ussd", subscriber_code=ACCOUNT_CODE, code_channel="aggregator"
        )
    gate = await backend.code_gate(first, "address", code_channel="aggregator")
    assert (gate.scope, gate.locked_until) == ("account", clock.now + CODE_LOCKOUT)
    assert (await backend.code_gate(first, "address")).locked_until is None
    # the handsets of the account still change it with the account code
    assert (await backend.change_address(second, new, "sms", subscriber_code=ACCOUNT_CODE)).changed
    row = await _row(backend, Account, account)
    assert (row.code_failures, row.code_locked_until) == (0, None)
    assert row.http_code_locked_until == clock.now + CODE_LOCKOUT
    # and the other way: the handset's lockout leaves HTTP (after its own lock ended) open
    clock.advance(seconds=CODE_LOCKOUT.total_seconds() + 1)
    await _lock(
        lambda: backend.request_payment_change(first, "KARTA", "sms", subscriber_code="000002")
    )
    request = await backend.request_payment_change(
        first, "KARTA", "ussd", subscriber_code=ACCOUNT_CODE, code_channel="aggregator"
    )
    assert (await backend.payment(first)).pending == request


async def test_an_http_guessing_run_leaves_the_subscribers_sms(
    backend: Backend, fresh: Any
) -> None:
    """The dialogs as the server wires them: the aggregator's runtime sees the backend through
    ``GuardedBackend(origin="http")``, the SMPP one through ``origin="smpp"``."""
    msisdn = await fresh(code="112233")
    store, metrics = MemoryStore(), Metrics()
    guard = CodeGuard(store, 1000, metrics)
    dialogs = build_dialogs()
    http = Runtime(store, dialogs, GuardedBackend(backend, guard, "http"), rate_limit=1000)
    smpp = Runtime(store, dialogs, GuardedBackend(backend, guard, "smpp"), rate_limit=1000)
    attacker, handset = Phone(http, msisdn), Phone(smpp, msisdn)
    for _ in range(CODE_ATTEMPTS):
        await attacker.dial("*100*1*1#")
        await attacker.ussd("1")
        await attacker.ussd("ul. Obca 1, 00-006 Warszawa")
        reply = await attacker.ussd("000000")
    assert "zablokowan" in reply.lower(), reply
    wrong = metrics.registry.get_sample_value("idea24_wrong_codes_total", {"origin": "http"})
    assert wrong == CODE_ATTEMPTS - 1  # the third is the lockout itself
    quote = await handset.sms("ADRES ul. Własna 7, 00-007 Warszawa")
    assert "TAK" in quote, quote
    assert await handset.sms("TAK 112233") == "Adres zmieniony na: ul. Własna 7, 00-007 Warszawa."
