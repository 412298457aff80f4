"""The turn itself on both stores, with a tiny counting dialog (the real ones: tests/dialogs)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from fsm.machine import DialogMachine, Transition
from fsm.record import DialogRecord
from fsm.redis_store import store_from_url
from fsm.runtime import Inbound, Notice, Reply, Runtime, Turn, TurnUnavailable
from tests.fsm.conftest import StoreCase

MSISDN = "48600000001"


class Counter:
    """``+`` counts up (state ``counting``), ``=`` ends, ``boom`` fails half-way, ``big`` bloats."""

    name = "sms"
    ttl = 0.3
    max_record_bytes = 1024
    reset_on_error = False
    machine = DialogMachine(
        "counter",
        ["idle", "counting"],
        [Transition("add", ("idle", "counting"), "counting"), Transition("end", "*", "idle")],
        "idle",
    )

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None

    def resumes(self, inbound: Inbound, record: DialogRecord) -> bool:
        return True

    async def handle(self, turn: Turn) -> None:
        text = turn.inbound.text
        if self.gate is not None and text == "+slow":
            await asyncio.wait_for(self.gate.wait(), 5)
        if text.startswith("+") or text in ("boom", "big"):
            await turn.fire("add")
            turn.data["n"] = turn.data.get("n", 0) + 1
            turn.data.setdefault("log", []).append(text)
            if text == "boom":
                raise RuntimeError("backend went away half-way")
            if text == "big":
                turn.data["blob"] = "x" * 2000
            turn.reply(f"n={turn.data['n']}")
        else:
            await turn.fire("end")
            turn.reply(f"total={turn.data.get('n', 0)}")
            turn.finish()

    def notice(self, inbound: Inbound, data: Mapping[str, Any], kind: Notice) -> Reply:
        return Reply(f"sorry:{kind}")


def runtime(case: StoreCase, dialog: Counter | None = None, **kw: Any) -> Runtime:
    return Runtime(case.store, {"sms": dialog or Counter()}, backend=None, **kw)


async def say(rt: Runtime, text: str, msisdn: str = MSISDN) -> list[str]:
    return [r.text for r in await rt.turn(Inbound(msisdn, "sms", text))]


async def test_turns_keep_state_between_messages(case: StoreCase) -> None:
    rt = runtime(case)
    assert await say(rt, "+") == ["n=1"]
    assert await say(rt, "+") == ["n=2"]
    assert await say(rt, "+", "48600000002") == ["n=1"]
    assert await say(rt, "=") == ["total=2"]
    assert await case.store.load(MSISDN) is None, "a finished dialog leaves no record"


async def test_state_expires_with_the_ttl(case: StoreCase) -> None:
    rt = runtime(case)
    await say(rt, "+")
    await case.advance(0.45)
    assert await say(rt, "+") == ["n=1"]


async def test_failure_half_way_keeps_the_previous_state(case: StoreCase) -> None:
    rt = runtime(case)
    await say(rt, "+a")
    assert await say(rt, "boom") == ["sorry:error"]
    rec = await case.store.load(MSISDN)
    assert rec is not None and rec.data == {"n": 1, "log": ["+a"]}
    assert await say(rt, "big") == ["sorry:error"], "over the size budget is a failure too"
    assert await say(rt, "+b") == ["n=2"]


async def test_failure_can_reset_the_dialog(case: StoreCase) -> None:
    dialog = Counter()
    dialog.reset_on_error = True
    rt = runtime(case, dialog)
    await say(rt, "+")
    assert await say(rt, "boom") == ["sorry:error"]
    assert await case.store.load(MSISDN) is None


async def test_two_messages_at_once_are_processed_in_order(case: StoreCase) -> None:
    dialog = Counter()
    dialog.gate = asyncio.Event()
    rt = runtime(case, dialog)
    first = asyncio.create_task(say(rt, "+slow"))
    await asyncio.sleep(0.02)
    second = asyncio.create_task(say(rt, "+fast"))
    await asyncio.sleep(0.05)
    assert not second.done(), "the second waits for the first's lock"
    dialog.gate.set()
    assert await asyncio.wait_for(first, 5) == ["n=1"]
    assert await asyncio.wait_for(second, 5) == ["n=2"]
    rec = await case.store.load(MSISDN)
    assert rec is not None and rec.data["log"] == ["+slow", "+fast"]


async def test_rate_limit_answers_politely(case: StoreCase) -> None:
    rt = runtime(case, rate_limit=3, rate_window=0.3)
    assert [await say(rt, "+") for _ in range(4)][-1] == ["sorry:rate_limited"]
    await case.advance(0.45)
    assert await say(rt, "+") != ["sorry:rate_limited"]


async def test_notices_say_which_kind_they_are(case: StoreCase) -> None:
    """The gateway counts turn outcomes (``idea24_turns_total{outcome}``) from this mark."""
    rt = runtime(case, rate_limit=2, rate_window=30)
    [ok] = await rt.turn(Inbound(MSISDN, "sms", "+"))
    [failed] = await rt.turn(Inbound(MSISDN, "sms", "boom"))
    [limited] = await rt.turn(Inbound(MSISDN, "sms", "+"))
    assert (ok.notice, failed.notice, limited.notice) == (None, "error", "rate_limited")
    assert rt.notice(Inbound(MSISDN, "sms", "+"), "busy").notice == "busy"


async def test_unknown_channel_gets_nothing(case: StoreCase) -> None:
    rt = runtime(case)
    assert await rt.turn(Inbound(MSISDN, "ussd", "*100#")) == []


@pytest.mark.redis
async def test_two_processes_share_one_subscriber_without_losing_a_turn(
    redis_server_url: str, redis_prefix: str, redis_client: object
) -> None:
    """Two runtimes on two Redis connections stand in for two `idea24 serve` processes."""
    stores = [store_from_url(redis_server_url, redis_prefix) for _ in range(2)]
    dialog = Counter()
    dialog.ttl = 30
    runtimes = [Runtime(s, {"sms": dialog}, backend=None, rate_limit=0) for s in stores]
    try:
        turns = [runtimes[i % 2].turn(Inbound(MSISDN, "sms", f"+{i}")) for i in range(20)]
        replies = await asyncio.wait_for(asyncio.gather(*turns), 30)
        counts = sorted(int(r[0].text.removeprefix("n=")) for r in replies)
        assert counts == list(range(1, 21)), "each turn saw the one before it"
        rec = await stores[0].load(MSISDN)
        assert rec is not None and sorted(rec.data["log"]) == sorted(f"+{i}" for i in range(20))
    finally:
        for s in stores:
            await s.aclose()


async def test_replies_are_delivered_before_the_state_is_saved(case: StoreCase) -> None:
    """With ``deliver``, a turn's replies are handed over before its record is written (a crash
    in between repeats a reply instead of losing it); a delivery that fails saves nothing; a
    notice and a turn with nothing to save are delivered exactly once too."""
    rt = runtime(case)
    seen: list[tuple[list[str], Any]] = []

    async def deliver(replies: list[Reply]) -> None:
        record = await case.store.load(MSISDN, "sms")
        seen.append(([r.text for r in replies], record.data.get("n") if record else None))

    assert [r.text for r in await rt.turn(Inbound(MSISDN, "sms", "+"), deliver)] == ["n=1"]
    assert seen == [(["n=1"], None)], "delivered while the record was not yet written"
    await rt.turn(Inbound(MSISDN, "sms", "+"), deliver)
    assert seen[-1] == (["n=2"], 1)

    async def broken(replies: list[Reply]) -> None:
        raise ConnectionError("outbox unreachable")

    with pytest.raises(TurnUnavailable):  # the SMSC is told "temporary error": it comes again
        await rt.turn(Inbound(MSISDN, "sms", "+"), broken)
    record = await case.store.load(MSISDN, "sms")
    assert record is not None and record.data["n"] == 2, "nothing of the failed turn saved"
    await rt.turn(Inbound(MSISDN, "sms", "boom"), deliver)  # the dialog fails: a notice
    await rt.turn(Inbound(MSISDN, "sms", "="), deliver)  # finishes: nothing to save
    assert [texts for texts, _ in seen[-2:]] == [["sorry:error"], ["total=2"]]
    assert len(seen) == 4


def test_no_connection_to_be_had_is_transient_a_bad_statement_is_not() -> None:
    """A failover's window: the primary shutting down or refusing, no standby promoted yet.
    SQLAlchemy wraps the driver's error at connect time without ``connection_invalidated``."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from fsm.runtime import is_transient

    def wrapped(cause: BaseException) -> DBAPIError:
        orig = Exception("driver error")
        orig.__cause__ = cause
        return DBAPIError("connect", None, orig)

    assert is_transient(wrapped(asyncpg.exceptions.CannotConnectNowError("shutting down")))
    assert is_transient(wrapped(ConnectionRefusedError(111, "refused")))
    assert is_transient(wrapped(asyncpg.exceptions.TargetServerAttributeNotMatched("standby")))
    assert not is_transient(wrapped(asyncpg.exceptions.UndefinedTableError("no table")))
