"""The simulator's TLS listener against independent clients: smpplib's blocking client and the
npm ``smpp`` ESME (tests/peers/esme.js), same accounts and behaviour as the plain port."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import smpplib.exceptions

from simulator.controller import SimulatorController
from tests.simulator.peer import Peer
from tests.tls_certs import Certs

MSISDN = "48600000001"


@pytest.fixture
async def sim(certs: Certs) -> AsyncIterator[SimulatorController]:
    context = certs.listener()
    async with SimulatorController(tls=context) as controller:
        yield controller


@pytest.fixture
async def mutual(certs: Certs) -> AsyncIterator[SimulatorController]:
    context = certs.listener(mutual=True)
    async with SimulatorController(tls=context) as controller:
        yield controller


def smpplib_context(certs: Certs, client: bool = False) -> ssl.SSLContext:
    """smpplib wraps its socket without a server name, so the host-name check is off here; the
    chain is still verified against our CA."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.check_hostname = False
    if client:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


def submit_and_receipt(peer: Peer) -> None:
    peer.bind()
    peer.submit(destination_addr=MSISDN, short_message=b"over TLS", registered_delivery=1)
    peer.pump(lambda: len(peer.responses) >= 1 and len(peer.delivered) >= 1)


async def test_smpplib_submits_and_gets_its_receipt_over_tls(
    sim: SimulatorController, certs: Certs
) -> None:
    assert sim.smpps_address is not None
    peer = Peer(sim.smpps_address, ssl_context=smpplib_context(certs))
    try:
        await asyncio.to_thread(submit_and_receipt, peer)
        [session] = sim.smsc.describe()["sessions"]
        assert session["tls"] in ("TLSv1.2", "TLSv1.3") and session["system_id"] == "idea24"
    finally:
        await asyncio.to_thread(peer.close)
    [response] = peer.responses
    [receipt] = peer.delivered
    assert receipt.receipted_message_id == response.message_id
    [message] = sim.messages(MSISDN)
    assert message.text == "over TLS" and message.receipt == "DELIVRD"
    traced = [v["command"] for v in sim.smsc.trace.views(msisdn=MSISDN)]
    assert "submit_sm" in traced and "deliver_sm" in traced, traced  # the PDU trace sees TLS


async def test_smpplib_and_mutual_tls(mutual: SimulatorController, certs: Certs) -> None:
    assert mutual.smpps_address is not None
    peer = Peer(mutual.smpps_address, ssl_context=smpplib_context(certs, client=True))
    try:
        await asyncio.to_thread(submit_and_receipt, peer)
    finally:
        await asyncio.to_thread(peer.close)
    assert len(peer.delivered) == 1

    refused = Peer(mutual.smpps_address, ssl_context=smpplib_context(certs))
    with pytest.raises((smpplib.exceptions.ConnectionError, OSError)):
        await asyncio.to_thread(refused.bind)
    await asyncio.to_thread(refused.client.disconnect)
    assert len(mutual.messages(MSISDN)) == 1  # the refused client sent nothing


@pytest.fixture
def esme_js(npm_peers: Path) -> Path:
    return npm_peers / "esme.js"


async def run_node_esme(
    script: Path, port: int, *files: Path
) -> tuple[int, list[dict[str, object]]]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), str(port), *map(str, files), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return int(proc.returncode or 0), [json.loads(line) for line in out.splitlines()]


async def test_node_esme_over_tls(sim: SimulatorController, certs: Certs, esme_js: Path) -> None:
    assert sim.smpps_address is not None
    code, events = await run_node_esme(esme_js, sim.smpps_address[1], certs.ca)
    assert code == 0, events
    kinds = [e["event"] for e in events]
    assert kinds[:3] == ["tls", "bind_resp", "submit_sm_resp"], events
    assert events[0]["authorized"] is True and events[0]["protocol"] in ("TLSv1.2", "TLSv1.3")
    receipt = next(e for e in events if e["event"] == "deliver_sm")
    assert receipt["receipt"] is True
    [message] = sim.messages(MSISDN)
    assert message.text == "Zażółć over TLS" and message.receipt == "DELIVRD"


async def test_node_esme_mutual_tls_accepted_and_refused(
    mutual: SimulatorController, certs: Certs, esme_js: Path
) -> None:
    assert mutual.smpps_address is not None
    port = mutual.smpps_address[1]
    code, events = await run_node_esme(esme_js, port, certs.ca, certs.client_cert, certs.client_key)
    assert code == 0, events
    code, events = await run_node_esme(esme_js, port, certs.ca)
    assert code == 1 and not any(e["event"] == "bind_resp" for e in events), events


async def test_node_esme_refuses_a_server_its_ca_did_not_sign(
    sim: SimulatorController, certs: Certs, esme_js: Path
) -> None:
    assert sim.smpps_address is not None
    code, events = await run_node_esme(esme_js, sim.smpps_address[1], certs.other_ca)
    assert code == 1 and events[-1]["event"] == "error", events
    assert sim.smsc.sessions == []
