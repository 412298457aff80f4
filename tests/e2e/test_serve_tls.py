"""``idea24 serve`` with every link encrypted: HTTPS for the API, /healthz and /metrics, and the
bundled simulator bound over SMPP-over-TLS; the banner says so."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.serve import PASSWORD_RE, serve
from tests.tls_certs import Certs

pytestmark = pytest.mark.slow


async def test_https_api_and_the_bundled_simulator_over_tls(tmp_path: Path, certs: Certs) -> None:
    args = [
        "--tls-cert",
        str(certs.server_cert),
        "--tls-key",
        str(certs.server_key),
        "--simulator-tls-cert",
        str(certs.server_cert),
        "--simulator-tls-key",
        str(certs.server_key),
        "--simulator-tls-ca",
        str(certs.ca),
    ]
    env = {"IDEA24_HTTP_HEADER_TIMEOUT": "1"}
    async with serve(tmp_path, env, args=args, https_ca=certs.ca) as s:
        assert s.url.startswith("https://")
        async with s.http.get(f"{s.url}/healthz") as r:
            health = await r.json()
            assert r.status == 200 and health["status"] == "ok", health
            assert list(health["checks"]["smpp"].values()) == ["bound"], health
        async with s.http.get(f"{s.url}/metrics") as r:
            assert r.status == 200 and "idea24_smpp_bind_up" in await r.text()
        async with s.http.get(f"{s.url}/phone") as r:
            assert r.status == 200 and r.content_type == "text/html"

        # The portal's call over HTTPS: a password reaches the handset through the TLS bind.
        msisdn = "48600000002"
        status, _ = await s.api("/api/v1/passwords", {"msisdn": msisdn})
        assert status == 202
        for _ in range(300):
            if messages := await s.mt(msisdn):
                break
            await asyncio.sleep(0.05)
        found = PASSWORD_RE.search(messages[-1]["text"])
        assert found, messages
        status, body = await s.api(
            "/api/v1/passwords/verify", {"msisdn": msisdn, "password": found.group(1)}
        )
        assert (status, body) == (200, {"valid": True})

        # A USSD turn through the simulator, whose only SMPP listener is TLS.
        screen = await s.ussd("48600000001", "*100#")
        assert screen["end"] is False and len(screen["text"]) <= 182

        # Nothing answers in clear text on the HTTPS port.
        plain = s.url.replace("https://", "http://")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(f"{plain}/healthz") as r:
                    await r.read()

        # A client that never starts its handshake is cut off like a slow request head.
        port = int(s.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()

        # A client that does not trust the CA is refused.
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(f"{s.url}/healthz", ssl=ssl.create_default_context()):
                    pass

    log = s.log()
    assert f"HTTP      {s.url}" in log, log
    assert "bundled simulator, SMPP smpps://127.0.0.1:" in log, log
