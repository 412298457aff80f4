"""The HTTP translation layer: status codes, JSON errors, API key, aggregator form.

The portal and USSD objects here are small recorders at the seam; the same endpoints run against
the real stack in tests/e2e.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from backend.errors import LockedOut, NotFound, RateLimited
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.web.guards import GlobalRateLimited
from gateway.web.http import DEPS, HttpDeps, add_routes, aggregator_turn, api_errors

KEY = {"X-API-Key": "test-key"}


class Portal:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.passwords = {"48600000001": "ABCD2345"}
        self.fail_next: Exception | None = None

    async def send_temp_password(self, msisdn: str) -> None:
        if self.fail_next:
            exc, self.fail_next = self.fail_next, None
            raise exc
        if msisdn not in self.passwords:
            raise NotFound()
        self.sent.append(msisdn)

    async def verify_temp_password(self, msisdn: str, password: str) -> bool:
        if self.fail_next:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return self.passwords.pop(msisdn, None) == password


class Ussd:
    def __init__(self) -> None:
        self.turns: list[tuple[str, str, str]] = []
        self.dialled: list[str | None] = []

    async def ussd_turn(
        self, msisdn: str, session_id: str, text: str, dialled: str | None = None
    ) -> tuple[str, bool]:
        self.turns.append((msisdn, session_id, text))
        self.dialled.append(dialled)
        return (f"menu after {text}", text == "9")

    async def ussd_refusal(self, key: str, msisdn: str | None = None) -> str:
        return f"<{key}>"


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Portal, Ussd]]:
    portal, ussd = Portal(), Ussd()
    app = web.Application(middlewares=[api_errors])
    app[DEPS] = HttpDeps(Settings(api_key="test-key"), Metrics(), portal, ussd, {"db": _ok})
    add_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c, portal, ussd


async def _ok() -> str:
    return "ok"


async def test_password_request_needs_the_key(client) -> None:
    c, portal, _ = client
    r = await c.post("/api/v1/passwords", json={"msisdn": "48600000001"})
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "unauthorized"
    r = await c.post("/api/v1/passwords", json={"msisdn": "+48 600 000 001"}, headers=KEY)
    assert r.status == 202
    assert portal.sent == ["48600000001"]


async def test_password_request_does_not_reveal_non_subscribers(client) -> None:
    c, portal, _ = client
    r = await c.post("/api/v1/passwords", json={"msisdn": "48699999999"}, headers=KEY)
    assert r.status == 202
    assert portal.sent == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "bad_json"),
        (b"[1]", "bad_json"),
        (b"{}", "missing_field"),
        (b'{"msisdn": "abc"}', "invalid_msisdn"),
        (b'{"msisdn": 5}', "missing_field"),
    ],
)
async def test_bad_bodies_are_4xx_json(client, body, code) -> None:
    c, _, _ = client
    r = await c.post(
        "/api/v1/passwords", data=body, headers={**KEY, "Content-Type": "application/json"}
    )
    assert r.status == 400
    assert (await r.json())["error"]["code"] == code


async def test_rate_limited_is_429(client) -> None:
    c, portal, _ = client
    portal.fail_next = RateLimited(1800.0)
    r = await c.post("/api/v1/passwords", json={"msisdn": "48600000001"}, headers=KEY)
    assert r.status == 429
    assert (await r.json())["error"]["retry_after"] == 1800
    assert r.headers["Retry-After"] == "1800"


async def test_global_password_cap_is_429_with_retry_after(client) -> None:
    c, portal, _ = client
    portal.fail_next = GlobalRateLimited(60.0)
    r = await c.post("/api/v1/passwords", json={"msisdn": "48600000001"}, headers=KEY)
    assert r.status == 429 and r.headers["Retry-After"] == "60"
    assert "all numbers" in (await r.json())["error"]["message"]


async def test_verify_valid_once_then_401(client) -> None:
    c, _, _ = client
    body = {"msisdn": "48600000001", "password": "ABCD2345"}
    r = await c.post("/api/v1/passwords/verify", json=body, headers=KEY)
    assert (r.status, await r.json()) == (200, {"valid": True})
    r = await c.post("/api/v1/passwords/verify", json=body, headers=KEY)
    assert (r.status, await r.json()) == (401, {"valid": False})


async def test_verify_locked_is_429(client) -> None:
    c, portal, _ = client
    portal.fail_next = LockedOut(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    r = await c.post(
        "/api/v1/passwords/verify", json={"msisdn": "48600000001", "password": "x"}, headers=KEY
    )
    assert r.status == 429
    assert (await r.json())["valid"] is False


async def test_ussd_aggregator_con_and_end(client) -> None:
    c, _, ussd = client
    form = {"sessionId": "s1", "phoneNumber": "+48600000001", "serviceCode": "*100#", "text": ""}
    r = await c.post("/api/v1/ussd", data=form, headers=KEY)
    assert r.content_type == "text/plain"
    assert await r.text() == "CON menu after *100#"
    r = await c.post("/api/v1/ussd?key=test-key", data={**form, "text": "2*9"})
    assert await r.text() == "END menu after 9"
    assert ussd.turns == [("48600000001", "s1", "*100#"), ("48600000001", "s1", "9")]
    assert ussd.dialled == [None, "*100*2*9#"]
    r = await c.post("/api/v1/ussd", data={"text": ""}, headers=KEY)
    assert r.status == 400 and await r.text() == "END <notice.error>"
    r = await c.post("/api/v1/ussd", data={**form, "phoneNumber": "12"}, headers=KEY)
    assert r.status == 400 and await r.text() == "END <error.not_found.subscriber>"


@pytest.mark.parametrize(
    ("code", "answers", "turn"),
    [
        ("*100#", "", ("*100#", None)),
        ("*100#", "2", ("2", "*100*2#")),
        ("*100#", "3*1*2", ("2", "*100*3*1*2#")),
        ("*100#", "*100*2#", ("*100*2#", None)),
        ("*100*3#", "1", ("1", "*100*3*1#")),
    ],
)
def test_aggregator_text_becomes_the_turn_and_the_dial_it_amounts_to(
    code: str, answers: str, turn: tuple[str, str | None]
) -> None:
    assert aggregator_turn(code, answers) == turn


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, ""), ({"X-API-Key": "wrong"}, ""), ({}, "?key=wrong"), ({"X-API-Key": ""}, "?key=")],
)
async def test_ussd_aggregator_without_the_key_is_401_and_runs_nothing(
    client, headers, query
) -> None:
    c, _, ussd = client
    form = {"sessionId": "s1", "phoneNumber": "48600000001", "text": "7"}
    r = await c.post("/api/v1/ussd" + query, data=form, headers=headers)
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "unauthorized"
    assert ussd.turns == []
    text = await (await c.get("/metrics")).text()
    assert 'idea24_ussd_http_refused_total{reason="unauthorized"} 1.0' in text


def _peer(remote: str) -> Any:
    """A middleware making the request come from ``remote`` (the test server is on loopback)."""

    @web.middleware
    async def peer(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request.clone(remote=remote))

    return peer


@pytest.mark.parametrize(
    ("settings", "key", "from_afar", "from_loopback"),
    [
        # Nothing configured: the published development key works from loopback only.
        (Settings(), "idea24-dev-key", 403, 200),
        (Settings(ussd_api_key="agg-key"), "agg-key", 200, 200),
        (Settings(api_key="portal-key"), "portal-key", 200, 200),
        (Settings(api_key="portal-key", ussd_api_key="agg-key"), "portal-key", 401, 401),
        (Settings(api_key="k", ussd_allow=("10.9.0.0/16",)), "k", 403, 403),
        (Settings(api_key="k", ussd_allow=("10.9.0.0/16", "192.0.2.7/32")), "k", 200, 403),
    ],
)
async def test_ussd_aggregator_key_and_addresses(settings, key, from_afar, from_loopback) -> None:
    form = {"sessionId": "s1", "phoneNumber": "48600000001", "text": ""}
    for remote, status in (("192.0.2.7", from_afar), ("127.0.0.1", from_loopback)):
        ussd = Ussd()
        app = web.Application(middlewares=[_peer(remote), api_errors])
        app[DEPS] = HttpDeps(settings, Metrics(), Portal(), ussd)
        add_routes(app)
        async with TestClient(TestServer(app)) as c:
            r = await c.post("/api/v1/ussd", data=form, headers={"X-API-Key": key})
            assert r.status == status, (remote, await r.text())
            assert len(ussd.turns) == (status == 200)


async def test_health_metrics_openapi(client) -> None:
    c, _, _ = client
    r = await c.get("/healthz")
    assert r.status == 200 and (await r.json())["checks"] == {"db": "ok"}
    await c.post("/api/v1/passwords", json={}, headers=KEY)
    r = await c.get("/metrics")
    text = await r.text()
    assert 'idea24_http_requests_total{route="/api/v1/passwords",status="400"} 1.0' in text
    doc = await (await c.get("/api/v1/openapi.json")).json()
    assert {"/api/v1/passwords", "/api/v1/passwords/verify", "/api/v1/ussd"} <= set(doc["paths"])
