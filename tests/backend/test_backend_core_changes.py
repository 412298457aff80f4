"""The hot changes as Core statements (activate, deactivate, check_subscriber_code): the rows they
write equal what the ORM path wrote, the lock and the lockout counting behave as before, and
concurrent changes of one number through two engines give one row."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from backend.api import Backend
from backend.errors import LockedOut, NotAccountCode, NotFound, WrongCode
from backend.models import ActiveService, AuditEntry, Charge, Subscriber
from backend.records import Change
from backend.services import services
from backend.services.accounts import CODE_ATTEMPTS, CODE_LOCKOUT
from backend.services.context import Context, audit, lock_subscriber


async def _orm_activate(ctx: Context, msisdn: str, code: str, channel: str) -> Change:
    """The ORM activation the Core statements replaced (kept here as the reference)."""
    info = await services.catalogue_service(ctx, code)
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        if await session.get(ActiveService, (msisdn, info.code)) is not None:
            return Change("activate", info.code, False, 0, today)
        session.add(
            ActiveService(msisdn=msisdn, service_code=info.code, activated_at=ctx.now(), numbers=[])
        )
        services.charge(session, msisdn, info.activation_fee, "activation", info.code, ctx)
        audit(session, ctx, msisdn, "activate", channel, service=info.code, fee=info.activation_fee)
    return Change("activate", info.code, True, info.activation_fee, today)


async def _orm_deactivate(ctx: Context, msisdn: str, code: str, channel: str) -> Change:
    info = await services.catalogue_service(ctx, code)
    today = ctx.today()
    async with ctx.sessions.begin() as session:
        await lock_subscriber(session, msisdn)
        row = await session.get(ActiveService, (msisdn, info.code))
        if row is None:
            return Change("deactivate", info.code, False, 0, today)
        await session.delete(row)
        audit(session, ctx, msisdn, "deactivate", channel, service=info.code)
    return Change("deactivate", info.code, True, 0, today)


async def _rows(backend: Backend, msisdn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the changes write for ``msisdn``, without ids and the number itself."""
    async with backend.sessionmaker() as session:
        audit_rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.msisdn == msisdn).order_by(AuditEntry.id)
        )
        charges = await session.scalars(
            select(Charge).where(Charge.msisdn == msisdn).order_by(Charge.id)
        )
        active = await session.scalars(
            select(ActiveService)
            .where(ActiveService.msisdn == msisdn)
            .order_by(ActiveService.service_code)
        )
        sub = await session.get(Subscriber, msisdn)
        assert sub is not None
        return {
            "audit": [
                ("<self>" if a.actor == msisdn else a.actor, a.action, a.detail, a.channel, a.at)
                for a in audit_rows
            ],
            "charges": [(c.amount, c.kind, c.reference, c.at) for c in charges],
            "active": [(s.service_code, s.activated_at, s.numbers) for s in active],
            "version": [(sub.version,)],
        }


async def _subscriber(backend: Backend, msisdn: str) -> Subscriber:
    async with backend.sessionmaker() as session:
        sub = await session.get(Subscriber, msisdn)
        assert sub is not None
        return sub


async def test_core_changes_write_the_rows_the_orm_path_wrote(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    core_msisdn, orm_msisdn = await fresh(), await fresh()
    ctx = backend.context
    steps = [
        ("activate", "NOCE", "sms"),
        ("activate", "NOCE", "ussd"),  # already active: no change, no charge, no audit
        ("activate", "POCZTAGLOSOWA", "web"),  # a free service: no charge row
        ("deactivate", "NOCE", "sms"),
        ("deactivate", "NOCE", "sms"),  # already off
        ("activate", "noce", "api"),  # the code as typed
    ]
    for action, code, channel in steps:
        clock.advance(seconds=7)
        if action == "activate":
            core = await backend.activate(core_msisdn, code, channel)
            orm = await _orm_activate(ctx, orm_msisdn, code, channel)
        else:
            core = await backend.deactivate(core_msisdn, code, channel)
            orm = await _orm_deactivate(ctx, orm_msisdn, code, channel)
        assert core == orm
    core_rows, orm_rows = await _rows(backend, core_msisdn), await _rows(backend, orm_msisdn)
    assert core_rows == orm_rows
    assert len(core_rows["audit"]) == 4 and len(core_rows["active"]) == 2
    assert [c[1] for c in core_rows["charges"]] == ["activation", "activation"]
    assert core_rows["version"] == [(len(steps),)]  # every change took the lock, even a no-op


async def test_unknown_number_is_not_found(backend: Backend) -> None:
    unknown = "48509000000"
    for call in (
        backend.activate(unknown, "NOCE", "sms"),
        backend.deactivate(unknown, "NOCE", "sms"),
        backend.check_subscriber_code(unknown, "123456"),
    ):
        with pytest.raises(NotFound) as found:
            await call
        assert found.value.params == {"what": "subscriber"}


async def test_lockout_after_code_attempts(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh(code="246810")
    # a right code resets the count: CODE_ATTEMPTS - 1 wrong ones, the right one, again
    for _ in range(2):
        for i in range(CODE_ATTEMPTS - 1):
            with pytest.raises(WrongCode) as wrong:
                await backend.check_subscriber_code(msisdn, "000000")
            assert wrong.value.attempts_left == CODE_ATTEMPTS - 1 - i
            assert (await _subscriber(backend, msisdn)).code_failures == i + 1
        await backend.check_subscriber_code(msisdn, "246810")
        assert (await _subscriber(backend, msisdn)).code_failures == 0
    for _ in range(CODE_ATTEMPTS - 1):
        with pytest.raises(WrongCode):
            await backend.check_subscriber_code(msisdn, "111111")
    version = (await _subscriber(backend, msisdn)).version
    with pytest.raises(LockedOut) as locked:
        await backend.check_subscriber_code(msisdn, "111111")
    until = clock.now + CODE_LOCKOUT
    assert locked.value.until == until
    sub = await _subscriber(backend, msisdn)
    assert (sub.code_failures, sub.code_locked_until, sub.version) == (0, until, version + 1)
    # while locked even the right code is refused, and nothing is written (rolled back)
    with pytest.raises(LockedOut) as still:
        await backend.check_subscriber_code(msisdn, "246810")
    assert still.value.until == until
    assert (await _subscriber(backend, msisdn)).version == version + 1
    rows = await _rows(backend, msisdn)
    assert rows["audit"] == [("system", "code_locked", {}, "system", clock.now)]
    clock.advance(seconds=CODE_LOCKOUT.total_seconds())
    await backend.check_subscriber_code(msisdn, "246810")
    sub = await _subscriber(backend, msisdn)
    assert (sub.code_failures, sub.code_locked_until) == (0, None)


async def test_expired_lock_counts_afresh(backend: Backend, fresh: Any, clock: Any) -> None:
    msisdn = await fresh(code="135790")
    for _ in range(CODE_ATTEMPTS):
        with pytest.raises((WrongCode, LockedOut)):
            await backend.check_subscriber_code(msisdn, "000000")
    clock.advance(minutes=15, seconds=1)
    with pytest.raises(WrongCode) as wrong:
        await backend.check_subscriber_code(msisdn, "000000")
    assert wrong.value.attempts_left == CODE_ATTEMPTS - 1
    # the ended lock's time stays until a right code clears it, as before
    assert (await _subscriber(backend, msisdn)).code_locked_until is not None
    await backend.check_subscriber_code(msisdn, "135790")
    assert (await _subscriber(backend, msisdn)).code_locked_until is None


async def test_account_code_through_the_core_check(backend: Backend, fresh: Any) -> None:
    first = await fresh(code="700001", account_kind="business", account_code="900900")
    account = f"8.{first}"
    second = await fresh(code="700002", account=account)
    with pytest.raises(WrongCode):  # the account code does not open one number's change
        await backend.check_subscriber_code(second, "900900")
    await backend.check_subscriber_code(second, "900900", scope="account")
    with pytest.raises(NotAccountCode):  # the number's own code, refused for what it is
        await backend.check_subscriber_code(second, "700002", scope="account")
    with pytest.raises(WrongCode):
        await backend.check_subscriber_code(second, "700001")  # another number's code


async def test_concurrent_activations_of_one_number_give_one_row(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh()
    for _ in range(2):
        results = await asyncio.wait_for(
            asyncio.gather(
                *((backend, other)[i % 2].activate(msisdn, "NOCE", "sms") for i in range(8))
            ),
            timeout=60,
        )
        assert sum(r.changed for r in results) == 1
        assert sorted(r.fee for r in results)[:-1] == [0] * 7  # one charged activation
        rows = await _rows(backend, msisdn)
        assert [a[0] for a in rows["active"]] == ["NOCE"]
        off = await asyncio.wait_for(
            asyncio.gather(
                *((backend, other)[i % 2].deactivate(msisdn, "NOCE", "sms") for i in range(8))
            ),
            timeout=60,
        )
        assert sum(r.changed for r in off) == 1
        assert (await _rows(backend, msisdn))["active"] == []
    rows = await _rows(backend, msisdn)
    assert [a[1] for a in rows["audit"]] == ["activate", "deactivate"] * 2
    assert len(rows["charges"]) == 2
    assert rows["version"] == [(32,)]


async def test_concurrent_wrong_codes_are_all_counted(
    backend: Backend, other: Backend, fresh: Any
) -> None:
    msisdn = await fresh(code="864200")
    outcomes = await asyncio.wait_for(
        asyncio.gather(
            *(
                (backend, other)[i % 2].check_subscriber_code(msisdn, "000000")
                for i in range(CODE_ATTEMPTS + 1)
            ),
            return_exceptions=True,
        ),
        timeout=60,
    )
    wrong = [o for o in outcomes if isinstance(o, WrongCode)]
    locked = [o for o in outcomes if isinstance(o, LockedOut)]
    assert len(wrong) == CODE_ATTEMPTS - 1 and len(locked) == 2
    assert sorted(w.attempts_left for w in wrong) == list(range(1, CODE_ATTEMPTS))
    assert locked[0].until == locked[1].until
    actions = [a[1] for a in (await _rows(backend, msisdn))["audit"]]
    assert actions == ["code_locked"]


async def test_code_checked_in_the_change_transaction_acts_as_check_then_change(
    backend: Backend, fresh: Any, clock: Any
) -> None:
    """``activate(..., subscriber_code=)`` (one transaction, the TAK confirmation's path) against
    ``check_subscriber_code`` then ``activate`` (two): the same outcome, exception, rows, failure
    count and lockout after every step — right codes, wrong ones, a lockout and its end."""
    one, two = await fresh(code="112233"), await fresh(code="112233")
    steps = [
        ("activate", "NOCE", "112233"),
        ("deactivate", "NOCE", "000000"),  # wrong: counted, nothing switched off
        ("deactivate", "NOCE", "112233"),  # right: the count back to 0
        ("activate", "NOCE", "999999"),
        ("activate", "NOCE", "999999"),
        ("activate", "NOCE", "999999"),  # the third wrong one in a row locks
        ("activate", "NOCE", "112233"),  # locked: refused even with the right code
        ("advance", "", ""),
        ("activate", "POCZTAGLOSOWA", "112233"),
        ("activate", "POCZTAGLOSOWA", "112233"),  # already on: no change, the code still checked
    ]

    async def combined(action: str, service: str, code: str) -> Any:
        run = backend.activate if action == "activate" else backend.deactivate
        return await run(one, service, "sms", subscriber_code=code)

    async def separate(action: str, service: str, code: str) -> Any:
        await backend.check_subscriber_code(two, code)
        run = backend.activate if action == "activate" else backend.deactivate
        return await run(two, service, "sms")

    for action, service, code in steps:
        clock.advance(seconds=7)
        if action == "advance":
            clock.advance(seconds=CODE_LOCKOUT.total_seconds())
            continue
        outcomes = []
        for path in (combined, separate):
            try:
                outcomes.append(await path(action, service, code))
            except (WrongCode, LockedOut) as exc:
                outcomes.append((type(exc).__name__, getattr(exc, "attempts_left", None)))
        assert outcomes[0] == outcomes[1], (action, service, code)
        a, b = await _subscriber(backend, one), await _subscriber(backend, two)
        assert (a.code_failures, a.code_locked_until) == (b.code_failures, b.code_locked_until)
        rows_one, rows_two = await _rows(backend, one), await _rows(backend, two)
        assert {k: v for k, v in rows_one.items() if k != "version"} == {
            k: v for k, v in rows_two.items() if k != "version"
        }
    final = await _rows(backend, one)
    assert [r[0] for r in final["active"]] == ["POCZTAGLOSOWA"]
    assert [a[1] for a in final["audit"]] == ["activate", "deactivate", "code_locked", "activate"]
