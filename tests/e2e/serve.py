"""Start ``idea24 serve`` as a subprocess on free ports and talk to it like a newcomer would."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port

API_KEY = "e2e-test-key"
PASSWORD_RE = re.compile(r"(?:on-line|Idea24 on-line): (\S{8})\b")


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    sim_url: str
    log_path: Path
    http: aiohttp.ClientSession

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def mo(self, msisdn: str, text: str) -> None:
        async with self.http.post(
            f"{self.sim_url}/api/v1/mo", json={"from": msisdn, "to": "2424", "text": text}
        ) as r:
            assert r.status == 202, await r.text()

    async def mt(self, msisdn: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.sim_url}/api/v1/messages", params={"msisdn": msisdn}) as r:
            body = await r.json()
        return [m for m in body["messages"] if m["direction"] == "mt" and m["kind"] == "sms"]

    async def sms(self, msisdn: str, text: str, within: float = 15.0) -> str:
        """Text the short code and wait for the reply SMS (the next MT to this handset)."""
        before = len(await self.mt(msisdn))
        await self.mo(msisdn, text)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = await self.mt(msisdn)
            if len(got) > before:
                return "\n".join(m["text"] for m in got[before:])
            await asyncio.sleep(0.05)
        raise AssertionError(f"no reply to {text!r} within {within}s\n{self.log()[-3000:]}")

    async def ussd(self, msisdn: str, text: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.sim_url}/api/v1/ussd", json={"msisdn": msisdn, "text": text}
        ) as r:
            body: dict[str, Any] = await r.json()
            assert r.status == 200, body
            return body

    async def api(self, path: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.url}{path}", json=dict(body), headers={"X-API-Key": API_KEY}
        ) as r:
            return r.status, await r.json()


def idea24_command() -> list[str]:
    script = Path(sys.executable).parent / "idea24"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


@asynccontextmanager
async def serve(
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    start_within: float = 60.0,
    *,
    args: Sequence[str] = (),
    https_ca: Path | None = None,
) -> AsyncIterator[Served]:
    """``idea24 serve`` with ``args`` added; ``https_ca``: the server speaks HTTPS with a
    certificate that CA signed (the client trusts it and nothing else)."""
    http_port, smpp_port, sim_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "serve.log"
    full_env = {
        **os.environ,
        "IDEA24_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'idea24.db'}",
        "IDEA24_API_KEY": API_KEY,
        "IDEA24_SECRET_KEY": "e2e-secret",
        "IDEA24_LOG_FORMAT": "json",
        **(env or {}),
    }
    cmd = [
        *idea24_command(),
        "serve",
        "--http",
        f"127.0.0.1:{http_port}",
        "--simulator-smpp",
        f"127.0.0.1:{smpp_port}",
        "--simulator-http",
        str(sim_port),
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the server outlives it
            cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path
        )
    scheme = "https" if https_ca else "http"
    url, sim_url = f"{scheme}://127.0.0.1:{http_port}", f"http://127.0.0.1:{sim_port}"
    connector = aiohttp.TCPConnector(
        ssl=ssl.create_default_context(cafile=str(https_ca)) if https_ca else True
    )
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=20), connector=connector
    ) as http:
        served = Served(proc, url, sim_url, log_path, http)
        try:
            await _wait_healthy(served, start_within)
            yield served
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _wait_healthy(served: Served, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise AssertionError(f"idea24 serve exited {served.proc.returncode}:\n{served.log()}")
        try:
            async with served.http.get(f"{served.url}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"idea24 serve not healthy within {within}s:\n{served.log()}")
