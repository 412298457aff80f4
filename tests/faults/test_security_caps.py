"""Limits across all numbers on the whole server: portal password requests (each one an SMS
the operator pays for) have a cap per minute besides each number's own limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.faults.harness import served_app

KEY = "caps-test-key"
DEMO = ["48600000001", "48600000002", "48600000003", "48600000010", "48600000011"]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    settings = {"api_key": KEY, "secret_key": "caps-secret", "password_rate": 3}
    async with served_app(tmp_path, **settings) as (url, _app):
        yield url


async def test_password_requests_have_a_cap_for_all_numbers(server: str) -> None:
    statuses, retry_after = [], set()
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        for msisdn in DEMO:  # one request per number: every number is under its own limit
            async with http.post(f"{server}/api/v1/passwords", json={"msisdn": msisdn}) as r:
                statuses.append(r.status)
                if r.status == 429:
                    retry_after.add(r.headers["Retry-After"])
        async with http.get(f"{server}/metrics") as r:
            metrics = await r.text()
    assert statuses == [202, 202, 202, 429, 429]
    assert retry_after == {"60"}
    assert 'idea24_password_requests_refused_total{scope="global"} 2.0' in metrics
