"""The simulator's HTTP API, event stream and terminal handset, with smpplib as the ESME."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from simulator.controller import SimulatorController, parse_accounts, run_simulator
from simulator.handset import run_phone
from simulator.http import add_handset_routes
from simulator.smsc import Smsc
from tests.conftest import free_port
from tests.simulator.peer import EsmeThread

MSISDN = "48600000002"


async def test_mo_over_http_gets_the_esme_reply(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    body = {"from": "+48 600 000 002", "to": "2424", "text": "Dzień dobry"}
    async with http.post(f"{sim.http_url}/api/v1/mo", json=body) as response:
        assert response.status == 202
        sent = await response.json()
    assert (sent["msisdn"], sent["direction"], sent["data_coding"]) == (MSISDN, "mo", 8)
    await sim.wait_messages(MSISDN)
    async with http.get(f"{sim.http_url}/api/v1/messages", params={"msisdn": MSISDN}) as response:
        messages = (await response.json())["messages"]
    assert [(m["direction"], m["text"]) for m in messages] == [
        ("mo", "Dzień dobry"),
        ("mt", "Echo: Dzień dobry"),
    ]
    assert messages[1]["parts"] == 1 and messages[1]["message_ids"]


async def test_ussd_over_http_returns_the_network_reply(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.http_url}/api/v1/ussd"
    async with http.post(url, json={"msisdn": MSISDN, "text": "*100#"}) as response:
        menu = await response.json()
    assert menu["text"].startswith("Idea24") and menu["end"] is False and menu["op"] == 2
    async with http.post(url, json={"msisdn": MSISDN, "text": "1"}) as response:
        final = await response.json()
    assert (final["text"], final["end"], final["op"]) == ("Wybrano 1", True, 17)
    async with http.post(url, json={"msisdn": MSISDN, "text": "1"}) as response:
        assert response.status == 409  # no session open any more


async def test_ussd_without_an_esme_times_out(
    sim: SimulatorController, http: aiohttp.ClientSession
) -> None:
    body = {"msisdn": MSISDN, "text": "*100#", "wait": 0.2}
    async with http.post(f"{sim.http_url}/api/v1/ussd", json=body) as response:
        assert response.status == 504
    async with http.delete(f"{sim.http_url}/api/v1/ussd", params={"msisdn": MSISDN}) as response:
        assert (await response.json()) == {"cancelled": True}


@pytest.mark.parametrize(
    "body",
    [{"to": "2424", "text": "x"}, {"from": "abc", "text": "x"}, {"from": MSISDN, "text": ""}],
)
async def test_bad_requests_are_400(
    sim: SimulatorController, http: aiohttp.ClientSession, body: dict[str, str]
) -> None:
    async with http.post(f"{sim.http_url}/api/v1/mo", json=body) as response:
        assert response.status == 400
        assert "error" in await response.json()
    async with http.post(f"{sim.http_url}/api/v1/mo", data=b"not json") as response:
        assert response.status == 400


async def test_event_stream_carries_messages(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.http_url}/api/v1/events"
    async with http.get(url, params={"msisdn": MSISDN}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await sim.inject_mo(MSISDN, "2424", "PAKIET")
        await sim.inject_mo("48600000003", "2424", "someone else")
        seen: list[dict[str, object]] = []
        async with asyncio.timeout(5):
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                if any(m["direction"] == "mt" for m in seen):
                    break
    assert {m["msisdn"] for m in seen} == {MSISDN}
    assert [m["text"] for m in seen if m["direction"] == "mt"] == ["Echo: PAKIET"]


async def test_healthz_sessions_and_page(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{sim.http_url}/healthz") as response:
        assert (await response.json())["status"] == "ok"
    async with http.get(f"{sim.http_url}/api/v1/sessions") as response:
        assert [s["mode"] for s in (await response.json())["sessions"]] == ["trx"]
    for path in ("/", "/phone", "/phone/static/phone.js", "/phone/static/phone.css"):
        async with http.get(f"{sim.http_url}{path}") as response:
            assert response.status == 200, path
            body = await response.text()
            assert "{{" not in body


def test_parse_accounts() -> None:
    assert parse_accounts(None) == {"idea24": "idea24"}
    assert parse_accounts(["a:b", "c:d:e"]) == {"a": "b", "c": "d:e"}
    from backend.errors import ConfigError

    with pytest.raises(ConfigError, match="--account"):
        parse_accounts(["nocolon"])


async def test_run_simulator_prints_its_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_simulator(["x:y"], "127.0.0.1", free_port(), "127.0.0.1", free_port(), ready=ready)
    )
    async with asyncio.timeout(5):
        await ready.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    out = capsys.readouterr().out
    assert "smpp://127.0.0.1:" in out and "accounts: x" in out and "/phone" in out


class _Screen(io.StringIO):
    """The terminal: remembers what was printed and wakes whoever waits for a text."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        return super().write(text)

    async def shows(self, text: str) -> None:
        async with asyncio.timeout(5):
            while text not in self.getvalue():
                self.changed.clear()
                await self.changed.wait()


async def test_terminal_handset(sim: SimulatorController, esme: EsmeThread) -> None:
    screen = _Screen()
    assert sim.http_url is not None

    async def typing() -> AsyncIterator[str]:
        await screen.shows("Type an SMS")
        yield "Ile mam minut?"
        await screen.shows("< 2424: Echo: Ile mam minut?")
        yield "*100#"
        await screen.shows("answer")
        yield "2"
        await screen.shows("[USSD] Wybrano 2")
        yield "*100#"
        await screen.shows("[USSD] Idea24")
        yield ""  # cancels

    code = await run_phone(MSISDN, sim.http_url, lines=typing(), out=screen)
    assert code == 0
    assert "USSD cancelled" in screen.getvalue()
    assert sim.smsc.ussd.get(MSISDN) is None


async def test_terminal_handset_without_simulator() -> None:
    screen = _Screen()

    async def nothing() -> AsyncIterator[str]:
        return
        yield ""

    code = await run_phone(MSISDN, f"http://127.0.0.1:{free_port()}", lines=nothing(), out=screen)
    assert code == 1 and "cannot reach" in screen.getvalue()


async def test_open_event_stream_does_not_hold_shutdown(http: aiohttp.ClientSession) -> None:
    """A handset page left open must not keep the server from stopping (``idea24 serve``
    mounts these routes on its own app, whose runner would wait for the SSE handler)."""
    smsc = Smsc()
    await smsc.start()
    app = web.Application()
    add_handset_routes(app, smsc, prefix="/phone")
    runner = web.AppRunner(app, shutdown_timeout=60.0)  # aiohttp's default wait for handlers
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with http.get(f"http://{host}:{port}/phone/api/v1/events") as stream:
            assert await stream.content.readline() == b": connected\n"
            async with asyncio.timeout(5):  # without the on_shutdown hook: 60 s
                await runner.cleanup()
                rest = await stream.content.read()
        assert b"event:" not in rest  # the stream ended cleanly, nothing half-written
    finally:
        await runner.cleanup()
        await smsc.stop()
