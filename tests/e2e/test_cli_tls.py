"""The TLS flags of ``idea24 serve`` and ``idea24 simulator``: clear errors, and the standalone
simulator's ``--smpps`` listener with client certificates required."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gateway.esme.link import SmppLink
from gateway.esme.throttle import Backoff
from gateway.settings import SmscProfile
from tests.conftest import free_port
from tests.e2e.serve import idea24_command
from tests.e2e.test_cli import run
from tests.tls_certs import Certs


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--smsc", "smpp://a:b@h:1?ca=/x.pem"], "use smpps://"),
        (["serve", "--smsc", "smpps://a:b@h:1?key=/k.pem"], "set together with cert"),
        (["serve", "--tls-cert", "/x.pem"], "IDEA24_TLS_CERT / IDEA24_TLS_KEY"),
        (
            ["serve", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem"],
            "cert file /nonexistent.pem does not exist",
        ),
        (
            ["serve", "--smsc", "smpps://a:b@127.0.0.1:1?ca=/nonexistent.pem"],
            "--smsc smpps://a:***@127.0.0.1:1: ca file /nonexistent.pem does not exist",
        ),
        (["simulator", "--smpps", "127.0.0.1:3550"], "--smpps: needs --tls-cert"),
        (["simulator", "--tls-cert", "/x.pem"], "set --smpps HOST:PORT too"),
    ],
)
def test_bad_tls_configuration_is_one_line_and_nonzero(
    args: list[str], needle: str, tmp_path: Path
) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2, result
    assert needle in result.stderr and "Traceback" not in result.stderr, result.stderr


async def test_simulator_command_with_mutual_tls(certs: Certs, tmp_path: Path) -> None:
    smpps = free_port()
    proc = await asyncio.create_subprocess_exec(
        *idea24_command(),
        "simulator",
        "--smpp",
        f"127.0.0.1:{free_port()}",
        "--http",
        f"127.0.0.1:{free_port()}",
        "--smpps",
        f"127.0.0.1:{smpps}",
        "--tls-cert",
        str(certs.server_cert),
        "--tls-key",
        str(certs.server_key),
        "--tls-client-ca",
        str(certs.client_ca),
        stdout=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b"SMPPS" not in (line := await proc.stdout.readline()):
                assert line, "the simulator exited"
        assert f"smpps://127.0.0.1:{smpps}  (client certificates required)" in line.decode()
        url = (
            f"smpps://idea24:idea24@127.0.0.1:{smpps}?ca={certs.ca}"
            f"&cert={certs.client_cert}&key={certs.client_key}"
        )
        link = SmppLink(SmscProfile.from_url(url), backoff=Backoff(0.05, 0.2))
        link.start()
        try:
            assert await link.wait_bound(10)
        finally:
            await link.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
