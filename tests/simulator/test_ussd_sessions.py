"""The simulator's USSD sessions end quietly: a dialogue cancelled or timed out after its dial
stopped waiting leaves no "Future exception was never retrieved" in the log."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from simulator.ussd import UssdSessions, UssdTimeout


async def test_closing_a_session_nobody_waits_on_logs_nothing() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        sessions = UssdSessions(timeout=1.0)
        for reason in ("cancelled by the handset", "USSD session timed out"):
            session = sessions.open("48600000001", "*100#", loop.time())
            sessions.expect_reply(session)  # the dial gave up on it (its HTTP caller went away)
            sessions.close("48600000001", UssdTimeout(reason))
            del session
            gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_a_waiting_dial_still_gets_the_reason() -> None:
    loop = asyncio.get_running_loop()
    sessions = UssdSessions()
    session = sessions.open("48600000001", "*100#", loop.time())
    waiter = sessions.expect_reply(session)
    sessions.close("48600000001", UssdTimeout("cancelled by the handset"))
    try:
        await waiter
    except UssdTimeout as exc:
        assert str(exc) == "cancelled by the handset"
    else:
        raise AssertionError("no UssdTimeout")
