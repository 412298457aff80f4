"""USSD from an HTTP aggregator on the whole server: without the key nothing runs, with it the
walk works (the endpoint once issued portal passwords to anyone who named a number)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import free_port

KEY = "ussd-test-key"
PASSWORD = re.compile(r"Idea24 on-line: (\S{8})")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    s = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}",
        http_port=port,
        api_key="portal-key",
        ussd_api_key=KEY,
        secret_key="ussd-secret",
        simulator_smpp_port=free_port(),
        simulator_http_port=free_port(),
    )
    runner = web.AppRunner(create_app(s))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_aggregator_needs_its_key_and_then_walks(server: str) -> None:
    form = {"sessionId": "a", "phoneNumber": "48600000001", "text": "7"}
    async with aiohttp.ClientSession() as http:
        for headers, query in (
            ({}, ""),
            ({"X-API-Key": "wrong"}, ""),
            ({"X-API-Key": "portal-key"}, ""),  # the API key is not the aggregator's key
            ({}, "?key=ussd-test-ke"),
        ):
            async with http.post(f"{server}/api/v1/ussd{query}", data=form, headers=headers) as r:
                assert r.status == 401, await r.text()
                assert "Idea24 on-line" not in await r.text()
        async with http.get(f"{server}/metrics") as r:
            metrics = await r.text()
        assert 'idea24_ussd_http_refused_total{reason="unauthorized"} 4.0' in metrics
        assert 'channel="ussd_http"' not in metrics  # no turn ran

        walk = {"sessionId": "b", "phoneNumber": "48600000001", "serviceCode": "*100#"}
        async with http.post(
            f"{server}/api/v1/ussd", data={**walk, "text": ""}, headers={"X-API-Key": KEY}
        ) as r:
            menu = await r.text()
            assert r.status == 200 and menu.startswith("CON "), menu
        async with http.post(f"{server}/api/v1/ussd?key={KEY}", data={**walk, "text": "7"}) as r:
            screen = await r.text()
            assert r.status == 200 and screen.startswith("END "), screen
        found = PASSWORD.search(screen)
        assert found, screen
        async with http.post(
            f"{server}/api/v1/passwords/verify",
            json={"msisdn": "48600000001", "password": found.group(1)},
            headers={"X-API-Key": "portal-key"},
        ) as r:
            assert (r.status, await r.json()) == (200, {"valid": True})
