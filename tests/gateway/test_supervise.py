"""No task dies silently: loops restart, one-off tasks are watched; logged once, counted."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.esme.session import SmppSession
from gateway.outbox.base import MemoryOutbox, OutboxItem
from gateway.outbox.sender import OutboxSender
from gateway.settings import SmscProfile
from gateway.supervise import Supervisor
from simulator.controller import SimulatorController

A = "48600000001"


async def test_a_crashing_loop_is_restarted_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(restart_after=0.0)
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise OSError(24, "Too many open files")

    with caplog.at_level(logging.DEBUG, logger="gateway.supervise"):
        await asyncio.wait_for(supervisor.forever("sender", flaky), 5)
    assert runs == 4
    assert supervisor.crashes == {"sender": 3}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


async def test_a_watched_task_s_exception_is_retrieved(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor()
    seen: list[BaseException] = []

    async def boom() -> None:
        raise RuntimeError("send failed")

    task = asyncio.create_task(boom())
    supervisor.watch(task, "outbox-send", seen.append)
    await asyncio.wait({task})
    await asyncio.sleep(0)
    assert supervisor.crashes == {"outbox-send": 1}
    assert [type(e) for e in seen] == [RuntimeError]
    del task
    gc.collect()  # no "Task exception was never retrieved" (pytest turns warnings into errors)
    assert "never retrieved" not in caplog.text


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorController]:
    async with SimulatorController({"idea24": "idea24"}) as controller:
        yield controller


class BrokenOnce(MemoryOutbox):
    """The first take raises what no store error list names; the first send task crashes."""

    def __init__(self) -> None:
        super().__init__()
        self.takes = 0

    async def take(self, consumer: str, limit: int = 1, wait: float = 0.0) -> list[OutboxItem]:
        self.takes += 1
        if self.takes == 1:
            raise RuntimeError("unexpected")
        return await super().take(consumer, limit, wait)


async def test_the_sender_outlives_its_crashes_and_sends_everything(
    sim: SimulatorController,
) -> None:
    host, port = sim.smpp_address
    profile = SmscProfile("idea24", "idea24", host, port, source_addr="2424")
    outbox = BrokenOnce()
    supervisor = Supervisor(restart_after=0.01)
    async with SmppSession(profile) as session:
        assert await session.wait_bound(5)
        sender = OutboxSender(outbox, session, supervisor=supervisor, poll=0.01, retry_base=0.01)
        crash_next = [True]
        real = sender.send_batch

        async def send_batch(items: list[Any]) -> None:
            if crash_next[0]:
                crash_next[0] = False
                raise RuntimeError("send task died")
            await real(items)

        sender.send_batch = send_batch  # type: ignore[method-assign]
        for n in range(5):
            await outbox.put(A, f"s{n}", {"channel": "sms"})
        sender.start()
        try:
            async with asyncio.timeout(10):
                while await outbox.depth():  # noqa: ASYNC110 - the outbox is the condition
                    await asyncio.sleep(0.01)
        finally:
            await sender.stop()
    assert supervisor.crashes == {"outbox-sender": 1, "outbox-send": 1}
    texts = sorted(m.text for m in sim.messages(A) if m.direction == "mt")
    assert texts == [f"s{n}" for n in range(5)]
