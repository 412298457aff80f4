"""Every fault mode, switched at run time from Python and over HTTP, seen by smpplib."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import smpplib.exceptions

from gateway.smpp.pdu import Pdu, Status
from simulator.controller import SimulatorController
from simulator.faults import FaultError
from tests.simulator.peer import Peer

MSISDN = "48600000001"


async def bound(sim: SimulatorController, mode: str = "transceiver") -> Peer:
    peer = Peer(sim.smpp_address, mode)
    await asyncio.to_thread(peer.bind)
    return peer


def submit_many(peer: Peer, n: int, registered_delivery: int = 0) -> None:
    for i in range(n):
        peer.submit(
            destination_addr=MSISDN,
            short_message=f"m{i}".encode(),
            registered_delivery=registered_delivery,
        )
    peer.pump(lambda: len(peer.responses) + len(peer.errors) >= n)


async def test_throttle(sim: SimulatorController) -> None:
    sim.faults.update(throttle=5)
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 12)
    finally:
        await asyncio.to_thread(peer.close)
    statuses = [p.status for p in peer.errors]
    assert len(peer.responses) >= 5
    assert statuses and set(statuses) == {Status.ESME_RTHROTTLED}
    sim.faults.update(throttle=1, throttle_status=Status.ESME_RMSGQFUL)
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 3)
    finally:
        await asyncio.to_thread(peer.close)
    assert {p.status for p in peer.errors} == {Status.ESME_RMSGQFUL}


async def test_reject_with_status_and_count(sim: SimulatorController) -> None:
    sim.faults.update(reject_status=Status.ESME_RSUBMITFAIL, reject_count=2)
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 4)
    finally:
        await asyncio.to_thread(peer.close)
    assert [p.status for p in peer.errors] == [Status.ESME_RSUBMITFAIL] * 2
    assert len(peer.responses) == 2


async def test_delay_responses(sim: SimulatorController) -> None:
    sim.faults.update(delay=0.3)
    peer = await bound(sim)
    try:
        start = time.monotonic()
        await asyncio.to_thread(submit_many, peer, 3)
        elapsed = time.monotonic() - start
    finally:
        await asyncio.to_thread(peer.close)
    assert 0.3 <= elapsed < 2.0  # all three waited, concurrently (a window, not a queue)


async def test_drop_connection_after_n_pdus(sim: SimulatorController) -> None:
    sim.faults.update(drop_after=2)
    peer = await bound(sim)  # the bind was PDU 1... counted from the switch, so it is the first

    def one_at_a_time(n: int) -> None:
        # Each submit waits for its answer: with several in flight the simulator closes a socket
        # holding unread PDUs, the kernel resets it, and the reset may discard the first answer
        # before the client reads it.
        for i in range(n):
            peer.submit(destination_addr=MSISDN, short_message=f"m{i}".encode())
            peer.pump(lambda sent=i + 1: len(peer.responses) + len(peer.errors) >= sent)

    with pytest.raises(smpplib.exceptions.ConnectionError):
        await asyncio.to_thread(one_at_a_time, 5)
    assert len(peer.responses) == 1
    await asyncio.to_thread(peer.client.disconnect)
    assert sim.faults.drop_after is None  # one-shot: the next connection works
    again = await bound(sim)
    await asyncio.to_thread(again.close)


async def test_drop_all_now(sim: SimulatorController) -> None:
    peers = [await bound(sim), await bound(sim, "receiver")]
    assert sim.drop_all() == 2
    for peer in peers:
        with pytest.raises(smpplib.exceptions.ConnectionError):
            await asyncio.to_thread(peer.pump, lambda: False, 2.0)
        await asyncio.to_thread(peer.client.disconnect)


async def test_refuse_binds_for_a_while(sim: SimulatorController) -> None:
    sim.faults.update(refuse_binds_until=sim.smsc.now() + 0.3)
    peer = Peer(sim.smpp_address)
    with pytest.raises(smpplib.exceptions.PDUError) as info:
        await asyncio.to_thread(peer.bind)
    assert info.value.args[1] == Status.ESME_RBINDFAIL
    await asyncio.to_thread(peer.client.disconnect)
    await asyncio.sleep(0.35)  # the fault is a time window: waiting it out is the test
    ok = await bound(sim)
    await asyncio.to_thread(ok.close)


async def test_duplicate_mo(sim: SimulatorController) -> None:
    sim.faults.update(duplicate_mo=True)
    peer = await bound(sim, "receiver")
    try:
        await sim.inject_mo(MSISDN, "2424", "TAK 111111", ack_timeout=None)
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) == 2)
    finally:
        await asyncio.to_thread(peer.close)
    first, second = peer.delivered
    assert first.short_message == second.short_message == b"TAK 111111"
    assert first.sequence != second.sequence


async def test_receipt_state_mix(sim: SimulatorController) -> None:
    sim.faults.update(receipt_states=["DELIVRD", "UNDELIV", "EXPIRED"])
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 3, 1)
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) == 3)
    finally:
        await asyncio.to_thread(peer.close)
    states = sorted(
        (d.message_state, d.short_message.split(b"stat:")[1][:7]) for d in peer.delivered
    )
    assert states == [(2, b"DELIVRD"), (3, b"EXPIRED"), (5, b"UNDELIV")]
    assert sorted(m.receipt or "" for m in sim.messages(MSISDN)) == [
        "DELIVRD",
        "EXPIRED",
        "UNDELIV",
    ]


async def test_receipt_on_failure_only(sim: SimulatorController) -> None:
    sim.faults.update(receipt_states=["DELIVRD", "UNDELIV"])
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 2, 2)  # registered_delivery 2: failures only
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) == 1)
    finally:
        await asyncio.to_thread(peer.close)
    assert peer.delivered[0].message_state == 5


async def test_receipt_before_submit_resp(sim: SimulatorController) -> None:
    sim.faults.update(receipt_first=True)
    peer = await bound(sim)
    order: list[str] = []
    peer.client.set_message_sent_handler(lambda pdu, **kw: order.append("resp"))
    peer.client.set_message_received_handler(lambda pdu, **kw: order.append("receipt"))
    try:
        peer.submit(destination_addr=MSISDN, short_message=b"x", registered_delivery=1)
        await asyncio.to_thread(peer.pump, lambda: len(order) == 2)
    finally:
        await asyncio.to_thread(peer.close)
    assert order == ["receipt", "resp"]


async def test_late_receipt(sim: SimulatorController) -> None:
    sim.faults.update(receipt_delay=0.3)
    peer = await bound(sim)
    try:
        peer.submit(destination_addr=MSISDN, short_message=b"x", registered_delivery=1)
        start = time.monotonic()
        await asyncio.to_thread(peer.pump, lambda: len(peer.responses) == 1)
        assert peer.delivered == []
        await asyncio.to_thread(peer.pump, lambda: len(peer.delivered) == 1)
        assert time.monotonic() - start >= 0.25
    finally:
        await asyncio.to_thread(peer.close)


async def test_handler_method_replaced_by_a_test(sim: SimulatorController) -> None:
    def only_odd(system_id: str, pdu: Pdu, now: float) -> int:
        return 0 if pdu.sequence % 2 else int(Status.ESME_RSYSERR)

    sim.handler.submit_status = only_odd  # type: ignore[method-assign]
    peer = await bound(sim)
    try:
        await asyncio.to_thread(submit_many, peer, 4)
    finally:
        await asyncio.to_thread(peer.close)
    assert len(peer.errors) == 2 and {p.sequence % 2 for p in peer.errors} == {0}


async def test_faults_over_http(sim: SimulatorController) -> None:
    url = f"{sim.http_url}/api/v1/faults"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.post(url, json={"reject_status": 0x45, "refuse_binds": 30}) as response:
            state = await response.json()
        assert state["reject_status"] == 0x45 and state["refuse_binds_until"] > sim.smsc.now()
        peer = Peer(sim.smpp_address)
        with pytest.raises(smpplib.exceptions.PDUError):
            await asyncio.to_thread(peer.bind)
        await asyncio.to_thread(peer.client.disconnect)
        async with http.post(url, json={"receipt_states": ["NOPE"]}) as response:
            assert response.status == 400
        async with http.delete(url) as response:
            assert (await response.json())["reject_status"] == 0
        peer = await bound(sim)
        async with http.post(url, json={"drop": True}) as response:
            assert (await response.json())["dropped"] == 1
        with pytest.raises(smpplib.exceptions.ConnectionError):
            await asyncio.to_thread(peer.pump, lambda: False, 2.0)
        await asyncio.to_thread(peer.client.disconnect)


def test_fault_switches_are_validated() -> None:
    from simulator.faults import Faults

    faults = Faults()
    with pytest.raises(FaultError, match="unknown fault"):
        faults.update(nonsense=1)
    with pytest.raises(FaultError, match="delay"):
        faults.update(delay=-1)
    with pytest.raises(FaultError, match="duplicate_mo"):
        faults.update(duplicate_mo="yes")
    faults.update(throttle=3, receipt_states="EXPIRED")
    faults.reset()
    assert faults.as_dict() == Faults().as_dict()
