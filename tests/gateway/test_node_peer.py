"""Interop: the gateway against an SMSC that shares no code with us (npm ``smpp`` under node).

tests/peers/smsc.js decodes what we send with its own codec and text handling, and sends MO,
USSD and receipts (its receipt ids in decimal, its submit_sm_resp ids in hex) encoded by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.binds import BindPool
from gateway.outbox.base import MemoryOutbox, reply_meta
from gateway.settings import SmscProfile
from gateway.sms.events import InboundEvent, InboundMessage

A = "48600000001"


@pytest.fixture(scope="session")
def node_peer(npm_peers: Path) -> Path:
    return npm_peers / "smsc.js"


class NodeSmsc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._ids = 0
        self.port = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            event = json.loads(line)
            async with self._new:
                self.events.append(event)
                self._new.notify_all()

    async def wait(self, kind: str, count: int = 1, within: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within), self._new:
            await self._new.wait_for(
                lambda: len([e for e in self.events if e["event"] == kind]) >= count
            )
        return [e for e in self.events if e["event"] == kind]

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for the event answering it (same id)."""
        assert self.proc.stdin is not None
        self._ids += 1
        ident = self._ids
        self.proc.stdin.write(json.dumps({"op": op, "id": ident, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(10), self._new:
            await self._new.wait_for(lambda: any(e.get("id") == ident for e in self.events))
        answer = next(e for e in self.events if e.get("id") == ident)
        assert answer["event"] != "error", answer
        return answer

    async def deliver(self, **pdu: Any) -> dict[str, Any]:
        base = {"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": A}
        return await self.command("deliver", pdu={**base, **pdu})


@pytest.fixture
async def peer(node_peer: Path) -> AsyncIterator[NodeSmsc]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(node_peer),
        "0",
        "idea24",
        "secret",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    smsc = NodeSmsc(proc)
    try:
        [listening] = await smsc.wait("listening")
        smsc.port = int(listening["port"])
        yield smsc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        smsc._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await smsc._reader


class Echo:
    def __init__(self, outbox: MemoryOutbox) -> None:
        self.outbox = outbox
        self.seen: list[InboundMessage] = []

    async def __call__(self, event: InboundEvent) -> None:
        assert isinstance(event, InboundMessage)
        self.seen.append(event)
        if event.channel == "ussd":
            await self.outbox.put(event.msisdn, "1 Konto\n2 Pakiet", reply_meta(event, end=False))
        else:
            await self.outbox.put(event.msisdn, f"echo {event.text}", reply_meta(event))


@pytest.fixture
async def pool(peer: NodeSmsc) -> AsyncIterator[BindPool]:
    outbox = MemoryOutbox()
    profile = SmscProfile(
        "idea24", "secret", "127.0.0.1", peer.port, system_type="IDEA24", source_addr="2424"
    )
    bind_pool = BindPool([profile], outbox, Echo(outbox))
    async with bind_pool:
        assert await bind_pool.sessions[0].wait_bound(10)
        yield bind_pool
    await peer.wait("unbind")  # a clean unbind on shutdown


async def test_bind_mo_reply_and_decimal_receipt(peer: NodeSmsc, pool: BindPool) -> None:
    [bound] = await peer.wait("bound")
    assert bound["system_type"] == "IDEA24"
    resp = await peer.deliver(
        destination_addr="2424", data_coding=0, short_message_hex=b"INFO".hex()
    )
    assert resp["command_status"] == 0
    [submit] = await peer.wait("submit_sm")
    assert submit["text"] == "echo INFO" and submit["destination_addr"] == A
    assert submit["source_addr"] == "2424" and submit["registered_delivery"] == 1
    await peer.wait("receipt_resp")
    item_id = next(iter(pool.tracker._messages))
    async with asyncio.timeout(5):
        while pool.tracker.state(item_id) != "delivered":  # noqa: ASYNC110 - tracker has no event
            await asyncio.sleep(0.01)


async def test_receipt_before_submit_sm_resp(peer: NodeSmsc, pool: BindPool) -> None:
    await peer.command("receipt_first", value=True)
    [item_id] = await pool.outbox.put(A, "HASLO: 1234", {"channel": "sms"})
    await peer.wait("receipt_resp")
    async with asyncio.timeout(5):
        while pool.tracker.state(item_id) != "delivered":  # noqa: ASYNC110 - tracker has no event
            await asyncio.sleep(0.01)
    assert pool.tracker.early == 1


async def test_ussd_session_echoed(peer: NodeSmsc, pool: BindPool) -> None:
    await peer.deliver(
        destination_addr="*100#",
        service_type="USSD",
        data_coding=0,
        short_message_hex=b"*100#".hex(),
        ussd_service_op=1,
        its_session_info_hex="0a00",
    )
    [submit] = await peer.wait("submit_sm")
    assert submit["service_type"] == "USSD" and submit["ussd_service_op"] == 2
    assert submit["its_session_info"] == "0a00" and submit["text"] == "1 Konto\n2 Pakiet"
    assert submit["registered_delivery"] == 0
    echo = pool._sink
    assert isinstance(echo, Echo) and echo.seen[0].session_id == f"{A}:10"


async def test_polish_reply_in_ucs2_and_long_mo(peer: NodeSmsc, pool: BindPool) -> None:
    await pool.outbox.put(A, "Zażółć gęślą jaźń", {"channel": "sms"})
    [submit] = await peer.wait("submit_sm")
    assert submit["data_coding"] == 8 and submit["text"] == "Zażółć gęślą jaźń"
    udh = "050003420201", "050003420202"
    for udh_hex, body in zip(udh, (b"ADRES Dluga 1, ", b"00-001 Warszawa"), strict=True):
        resp = await peer.deliver(
            destination_addr="2424",
            esm_class=0x40,
            data_coding=0,
            short_message_hex=udh_hex + body.hex(),
        )
        assert resp["command_status"] == 0
    submits = await peer.wait("submit_sm", 2)
    assert submits[1]["text"] == "echo ADRES Dluga 1, 00-001 Warszawa"


async def test_enquire_link_from_the_peer(peer: NodeSmsc, pool: BindPool) -> None:
    answer = await peer.command("enquire_link")
    assert answer["event"] == "enquire_link_resp" and answer["command_status"] == 0
