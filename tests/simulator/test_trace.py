"""The live PDU trace: what crossed the binds, decoded, bounded, filtered, streamed."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from gateway.smpp.codec import encode
from gateway.smpp.pdu import Pdu
from simulator.controller import SimulatorController
from simulator.trace import PduTrace
from tests.simulator.peer import EsmeThread, Peer

MSISDN = "48600000002"


async def pdus(http: aiohttp.ClientSession, url: str, **query: str) -> list[dict]:  # type: ignore[type-arg]
    async with http.get(f"{url}/api/v1/pdus", params=query) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    return list(body["pdus"])


async def test_a_ussd_walk_is_traced_with_tlvs_by_name(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    assert sim.http_url
    await sim.ussd(MSISDN, "*100#")
    await sim.ussd(MSISDN, "2")
    await sim.smsc.wait_messages(MSISDN, 2)
    # The ESME's own thread reads its socket (a second reader would split PDUs between the two):
    # wait for it to have read both responses.
    for _ in range(500):
        if len(esme.peer.responses) >= 2:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError(f"{len(esme.peer.responses)} of 2 submit_sm_resp read in 5 s")
    await asyncio.sleep(0)  # the submit_sm_resp is written in the same turn as the submit
    walk = await pdus(http, sim.http_url, msisdn=MSISDN)
    ops = [
        (
            p["direction"],
            p["command"],
            p["tlvs"]["ussd_service_op"],
            p["meaning"]["ussd_service_op"],
        )
        for p in walk
        if "ussd_service_op" in p["tlvs"]
    ]
    assert ops == [
        ("out", "deliver_sm", 1, "PSSR_INDICATION"),
        ("in", "submit_sm", 2, "USSR_REQUEST"),
        ("out", "deliver_sm", 18, "USSR_CONFIRM"),
        ("in", "submit_sm", 17, "PSSR_RESPONSE"),
    ]
    menu = next(p for p in walk if p["tlvs"].get("ussd_service_op") == 2)
    assert menu["text"] == "Idea24\n1 Konto\n2 Pakiet"
    assert menu["fields"]["destination_addr"] == MSISDN
    assert menu["meaning"]["its_session_info"].startswith("session ")
    assert bytes.fromhex(menu["hex"])[4:8] == b"\x00\x00\x00\x04"
    assert menu["bind"]["system_id"] == "idea24" and menu["bind"]["mode"] == "trx"
    # Responses carry no number: they take their request's, so the filter keeps them.
    resps = [p for p in walk if p["command"] in ("submit_sm_resp", "deliver_sm_resp")]
    assert len(resps) >= 4
    assert all(p["msisdn"] == MSISDN and p["status_name"] == "ESME_ROK" for p in resps)
    assert [p["id"] for p in walk] == sorted(p["id"] for p in walk)


async def test_bind_password_is_never_shown_and_filters_by_bind(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    assert sim.http_url
    other = Peer(sim.smpp_address, mode="transmitter", system_id="other", password="secret")
    await asyncio.to_thread(other.bind)
    try:
        binds = await pdus(http, sim.http_url, bind="other")
        assert [p["command"] for p in binds] == ["bind_transmitter", "bind_transmitter_resp"]
        request = binds[0]
        assert request["fields"]["system_id"] == "other"
        assert request["fields"]["password"] == "******"
        assert b"secret" not in bytes.fromhex(request["hex"])
        by_id = await pdus(http, sim.http_url, bind=str(request["bind"]["id"]))
        assert [p["id"] for p in by_id] == [p["id"] for p in binds]
        assert await pdus(http, sim.http_url, bind="nobody") == []
    finally:
        await asyncio.to_thread(other.close)
    async with http.get(f"{sim.http_url}/api/v1/pdus", params={"after": "x"}) as response:
        assert response.status == 400
        assert "after" in (await response.json())["error"]


async def test_pdu_event_stream_delivers_new_pdus_live(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    assert sim.http_url
    url = f"{sim.http_url}/api/v1/pdus/events"
    async with http.get(url, params={"msisdn": MSISDN}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await stream.content.readline()  # ": connected": subscribed
        await sim.inject_mo(MSISDN, "2424", "Hej")
        seen: list[dict] = []  # type: ignore[type-arg]
        async with asyncio.timeout(5):
            async for raw in stream.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    commands = [p["command"] for p in seen]
                    if "submit_sm" in commands and "submit_sm_resp" in commands:
                        break
    assert seen[0]["command"] == "deliver_sm" and seen[0]["text"] == "Hej"
    assert {p["msisdn"] for p in seen} == {MSISDN}
    assert any(p["text"] == "Echo: Hej" for p in seen)


async def test_a_reconnecting_stream_first_gets_what_it_missed(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    assert sim.http_url
    await sim.inject_mo(MSISDN, "2424", "Raz")
    await sim.wait_messages(MSISDN)
    seen = await pdus(http, sim.http_url, msisdn=MSISDN)
    first = seen[0]["id"]
    url = f"{sim.http_url}/api/v1/pdus/events"
    headers = {"Last-Event-ID": str(first)}
    async with http.get(url, params={"msisdn": MSISDN}, headers=headers) as stream:
        ids: list[int] = []
        async with asyncio.timeout(5):
            async for raw in stream.content:
                line = raw.decode()
                if line.startswith("id:"):
                    ids.append(int(line[3:]))
                    if len(ids) == len(seen) - 1:
                        break
    assert ids == [p["id"] for p in seen[1:]]


def test_ring_is_bounded_and_size_zero_records_nothing() -> None:
    trace = PduTrace(3)
    bind = trace.new_bind("127.0.0.1:1")
    for sequence in range(1, 6):
        trace.record(bind, "in", encode(Pdu("enquire_link", sequence)))
    assert [v["sequence"] for v in trace.views()] == [3, 4, 5]
    assert [v["sequence"] for v in trace.views(after=trace.records()[1][0])] == [5]
    off = PduTrace(0)
    off.record(bind, "in", encode(Pdu("enquire_link", 1)))
    assert off.records() == []
    with pytest.raises(ValueError, match="trace size"):
        PduTrace(-1)


def test_garbage_is_shown_as_such() -> None:
    trace = PduTrace(10)
    bind = trace.new_bind("127.0.0.1:1")
    trace.record(bind, "in", b"\x00\x00\x00\x10\x00\x00\x77\x77" + bytes(8))
    bad = trace.views()[-1]
    assert bad["command"] == "0x00007777" and "unknown command_id" in bad["error"]
    assert bad["hex"] == "00000010000077770000000000000000"


def test_decoded_views_are_forgotten_with_their_pdus() -> None:
    trace = PduTrace(5)
    bind = trace.new_bind("127.0.0.1:1")
    for sequence in range(1, 40):
        trace.record(bind, "in", encode(Pdu("enquire_link", sequence)))
        assert trace.views()[-1]["sequence"] == sequence
    assert len(trace._views) <= 10


async def test_sar_and_payload_are_described(sim: SimulatorController) -> None:
    peer = Peer(sim.smpp_address)
    await asyncio.to_thread(peer.bind)
    try:
        for seq in (1, 2):
            await asyncio.to_thread(
                peer.submit,
                destination_addr=MSISDN,
                short_message=f"part {seq}".encode(),
                sar_msg_ref_num=9,
                sar_total_segments=2,
                sar_segment_seqnum=seq,
            )
        await asyncio.to_thread(peer.submit, destination_addr=MSISDN, message_payload=b"long one")
        await sim.wait_messages(MSISDN, 2)
    finally:
        await asyncio.to_thread(peer.close)
    submits = [v for v in sim.smsc.trace.views(msisdn=MSISDN) if v["command"] == "submit_sm"]
    assert [v["meaning"].get("sar") for v in submits] == [
        "part 1 of 2, ref 9",
        "part 2 of 2, ref 9",
        None,
    ]
    assert submits[2]["tlvs"]["message_payload"] == "8 octets"
    assert submits[2]["text"] == "long one"
