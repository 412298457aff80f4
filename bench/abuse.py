"""A security probe's attacks, replayed against a real ``idea24 serve`` (SQLite, bundled
simulator, free loopback ports, its own temporary directory):

    .venv/bin/python bench/abuse.py [--half-sent 1000] [--numbers 1000]

1. ``POST /api/v1/ussd`` without a key (the request that once returned a portal password).
2. ``--half-sent`` connections that each send half a request's headers: how many the server
   holds after one second and after its header deadline, and whether a normal request is
   answered meanwhile.
3. ``--numbers`` portal password requests, one per synthetic subscriber (each under its own
   limit): how many SMS the server queued, how many were refused with 429.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

KEY = "abuse-bench-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> str:
    async with http.get(f"{url}/metrics") as r:
        text = await r.text()
    return " ".join(line for line in text.splitlines() if line.startswith(name))


async def run(url: str, half_sent: int, numbers: int) -> None:
    port = int(url.rsplit(":", 1)[1])
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        form = {"sessionId": "a", "phoneNumber": "48600000001", "text": "7"}
        async with http.post(f"{url}/api/v1/ussd", data=form) as r:
            print(f"1. USSD over HTTP without a key: {r.status} {(await r.text())[:60]}")

        held = []
        for _ in range(half_sent):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                break
            w.write(b"POST /api/v1/passwords HTTP/1.1\r\nHost: x\r\n")
            held.append(w)
        await asyncio.sleep(1.0)
        started = time.monotonic()
        async with http.get(f"{url}/healthz") as r:
            ok = r.status
        answered = time.monotonic() - started
        after_1s = await metric(http, url, "idea24_http_connections")
        await asyncio.sleep(11.0)
        after_12s = await metric(http, url, "idea24_http_connections")
        for w in held:
            w.close()
        print(
            f"2. {len(held)} half-sent requests: /healthz meanwhile {ok} in"
            f" {answered * 1000:.0f} ms; after 1 s: {after_1s}; after 12 s: {after_12s}"
        )

        started = time.monotonic()
        statuses: dict[int, int] = {}

        async def ask(i: int) -> None:
            body = {"msisdn": str(48700000000 + i)}
            async with http.post(
                f"{url}/api/v1/passwords", json=body, headers={"X-API-Key": KEY}
            ) as r:
                statuses[r.status] = statuses.get(r.status, 0) + 1

        await asyncio.gather(*(ask(i) for i in range(numbers)))
        took = time.monotonic() - started
        refused = await metric(http, url, "idea24_password_requests_refused_total")
        print(
            f"3. {numbers} password requests for {numbers} numbers in {took:.1f} s:"
            f" {statuses}; {refused}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half-sent", type=int, default=1000)
    parser.add_argument("--numbers", type=int, default=1000)
    args = parser.parse_args()
    idea24 = str(Path(sys.executable).parent / "idea24")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "IDEA24_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/idea24.db",
            "IDEA24_API_KEY": KEY,
            "IDEA24_SECRET_KEY": "abuse",
            "IDEA24_LOG_LEVEL": "WARNING",
        }
        seed = [idea24, "db", "seed", "--subscribers", str(args.numbers)]
        subprocess.run(seed, env=env, check=True, capture_output=True)
        port = free_port()
        serve = [
            idea24,
            "serve",
            "--http",
            f"127.0.0.1:{port}",
            "--simulator-smpp",
            f"127.0.0.1:{free_port()}",
            "--simulator-http",
            str(free_port()),
        ]
        proc = subprocess.Popen(
            serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp
        )
        try:
            asyncio.run(run(f"http://127.0.0.1:{port}", args.half_sent, args.numbers))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
