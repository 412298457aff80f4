"""USSD from an HTTP aggregator on the whole server: without the key nothing runs, with it the
walk works (the endpoint once issued portal passwords to anyone who named a number)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.components import COMPONENTS
from tests.dialogs.conftest import Phone
from tests.faults.harness import served_app

KEY = "ussd-test-key"
PASSWORD = re.compile(r"Idea24 on-line: (\S{8})")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, web.Application]]:
    async with served_app(
        tmp_path, api_key="portal-key", ussd_api_key=KEY, secret_key="ussd-secret"
    ) as served:
        yield served


@pytest.fixture
def server(served: tuple[str, web.Application]) -> str:
    return served[0]


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


async def test_wrong_codes_over_http_do_not_lock_the_handset(
    served: tuple[str, web.Application],
) -> None:
    """Three wrong subscriber codes through the aggregator lock its path, not the number's SMS:
    the handset's runtime (as the server wired it for SMPP) still confirms with the right code."""
    server, app = served
    async with aiohttp.ClientSession() as http:

        async def turn(session: str, text: str) -> str:
            form = {"sessionId": session, "phoneNumber": "48600000001", "serviceCode": "*100#"}
            async with http.post(
                f"{server}/api/v1/ussd", data={**form, "text": text}, headers={"X-API-Key": KEY}
            ) as r:
                assert r.status == 200
                return await r.text()

        for i in range(3):
            screens = [await turn(f"g{i}", t) for t in ("", "1", "1*1", "1*1*1")]
            screens.append(await turn(f"g{i}", "1*1*1*ul. Obca 1, 00-006 Warszawa"))
            screens.append(await turn(f"g{i}", "1*1*1*ul. Obca 1, 00-006 Warszawa*000000"))
        assert screens[-1].startswith("END Kod abonencki zablokowany do "), screens
        async with http.get(f"{server}/metrics") as r:
            metrics = await r.text()
        assert 'idea24_wrong_codes_total{origin="http"} 2.0' in metrics  # the 3rd locked
    runtime = app[COMPONENTS].runtime
    assert runtime is not None
    handset = Phone(runtime, "48600000001")
    assert "TAK" in await handset.sms("ADRES ul. Własna 7, 00-007 Warszawa")
    assert await handset.sms("TAK 111111") == "Adres zmieniony na: ul. Własna 7, 00-007 Warszawa."
