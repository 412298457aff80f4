"""The server's HTTP API fuzzed from its own OpenAPI document (schemathesis): no 5xx, ever.

The whole server (``create_app``: SQLite seeded with the demo subscribers, the bundled simulator,
the SMPP bind) listens on a free loopback port; schemathesis reads ``/api/v1/openapi.json`` from
it and generates requests per operation, both schema-valid ones (positive) and ones that break
the schema (negative), half of them with the right ``X-API-Key`` so the password endpoints are
reached past the key check. Each response must be below 500 (``/healthz`` may say 503 when a
check fails, as documented) and conform to the document's status codes.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.faults.harness import served_app

KEY = "fuzz-api-key"
EXAMPLES = 60


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    async with served_app(tmp_path, api_key=KEY, secret_key="fuzz-secret") as (url, _app):
        yield url


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    http: requests.Session,
    seen: Counter[str],
) -> None:
    name = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), with_key=st.booleans())
    def run(case: Any, with_key: bool) -> None:
        headers = {"X-API-Key": KEY} if with_key else None
        response = case.call(base_url=base_url, session=http, headers=headers)
        seen[f"{name} {response.status_code}"] += 1
        if operation.path == "/healthz" and response.status_code == 503:
            return
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

    run()


def fuzz(base_url: str) -> Counter[str]:
    """Runs in a worker thread: schemathesis' calls are blocking (requests)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    seen: Counter[str] = Counter()
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation: Any = result.ok()  # type: ignore[union-attr]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and operation.method.upper() == "GET":
                    continue  # nothing to break in a GET without parameters
                fuzz_operation(operation, mode, base_url, http, seen)
    return seen


async def test_openapi_fuzz_finds_no_server_errors(server: str) -> None:
    async with asyncio.timeout(20):  # the SMPP bind comes up just after the HTTP site
        while True:
            health = await asyncio.to_thread(requests.get, f"{server}/healthz", timeout=5)
            if health.status_code == 200:
                break
            await asyncio.sleep(0.05)
    seen = await asyncio.to_thread(fuzz, server)
    statuses = Counter(label.rsplit(" ", 1)[1] for label in seen.elements())
    assert not any(s.startswith("5") and s != "503" for s in statuses)
    operations = len({label.rsplit(" ", 1)[0] for label in seen})
    print(
        f"\nOpenAPI fuzz: {sum(seen.values())} requests over {operations} operations, "
        f"statuses {dict(sorted(statuses.items()))}, 0 server errors"
    )


FORM = {"Content-Type": "application/x-www-form-urlencoded", "X-API-Key": KEY}
JSON_KEY = {"X-API-Key": KEY, "Content-Type": "application/json"}
#: What schemathesis does not generate: bodies broken below the schema. Each found a 500 once.
HOSTILE: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("POST", "/api/v1/passwords", b" " * (2 << 20), JSON_KEY, 413),  # past client_max_size
    ("POST", "/api/v1/passwords", b"[" * 100_000 + b"]" * 100_000, JSON_KEY, 400),  # recursion
    (
        "POST",
        "/api/v1/passwords",
        b"\x1f\x8b garbage",
        {**JSON_KEY, "Content-Encoding": "gzip"},
        400,
    ),
    (
        "POST",
        "/api/v1/ussd",
        b"--x\r\nbroken",
        {"Content-Type": "multipart/form-data; boundary=x", "X-API-Key": KEY},
        400,
    ),
    ("POST", "/api/v1/ussd", b"sessionId=" + b"a" * 5000 + b"&phoneNumber=48600000001", FORM, 400),
    ("POST", "/api/v1/passwords", b"\xff\xfe", JSON_KEY, 400),
    ("POST", "/api/v1/passwords", b'{"msisdn": 48600000001}', JSON_KEY, 400),
    ("POST", "/api/v1/passwords", b'{"msisdn": "48600000001\\u0000"}', JSON_KEY, 400),
    ("POST", "/api/v1/passwords", b'{"msisdn": "\\ud800"}', JSON_KEY, 400),
    (
        "POST",
        "/api/v1/passwords/verify",
        b'{"msisdn": "48600000001", "password": "\\ud800"}',
        JSON_KEY,
        401,
    ),
    (
        "POST",
        "/api/v1/passwords/verify",
        b'{"msisdn": "48600000003", "password": "' + b"a" * 100_000 + b'"}',
        JSON_KEY,
        401,
    ),
    ("POST", "/api/v1/ussd", b"sessionId=%ff%fe&phoneNumber=48600000001&text=1", FORM, 200),
    ("POST", "/api/v1/ussd", b"sessionId=a&phoneNumber=48600000001%00", FORM, 400),
    (
        "POST",
        "/api/v1/ussd",
        b"sessionId=b&phoneNumber=48600000001&text=" + b"1*" * 50_000,
        FORM,
        200,
    ),
    ("POST", "/api/v1/ussd", b"sessionId=c&phoneNumber=48600000001&serviceCode=%00", FORM, 200),
    ("POST", "/api/v1/ussd", b"sessionId=" + b"d" * 100 + b"&phoneNumber=48600000001", FORM, 200),
]


async def test_hostile_bodies_get_4xx_not_500(server: str) -> None:
    statuses: Counter[int] = Counter()
    for method, path, body, headers, expected in HOSTILE:
        # A fresh connection each: aiohttp closes one whose body it could not read.
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.request(method, server + path, data=io.BytesIO(body), headers=headers) as r,
        ):
            text = await r.text()
            statuses[r.status] += 1
            assert r.status == expected, (path, body[:60], r.status, text[:200])
            if path == "/api/v1/ussd" and r.status == 200:
                assert text.startswith(("CON ", "END ")) and "błąd" not in text, text
    print(f"\nhostile bodies: {len(HOSTILE)} sent, statuses {dict(sorted(statuses.items()))}")
