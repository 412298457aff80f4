"""A listener built by ``reloading_server_context`` serves a renewed certificate from the next
handshake on, without a restart, and keeps the last good one when a renewal is unusable."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from gateway.tls import client_context, reloading_server_context


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, Path, trustme.CA]]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    first = ca.issue_cert("127.0.0.1", common_name="first")
    first.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    first.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    context = reloading_server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], tmp_path, ca
    finally:
        server.close()
        await server.wait_closed()


async def served_name(port: int, ca: Path) -> str:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(str(ca)), server_hostname="127.0.0.1"
    )
    cert = writer.get_extra_info("peercert")
    writer.close()
    return str(dict(pair[0] for pair in cert["subject"])["commonName"])


def renew(directory: Path, ca: trustme.CA, name: str) -> None:
    """Write a new certificate and key beside the old ones and move them over (atomic)."""
    leaf = ca.issue_cert("127.0.0.1", common_name=name)
    leaf.cert_chain_pems[0].write_to_path(str(directory / "new-cert.pem"))
    leaf.private_key_pem.write_to_path(str(directory / "new-key.pem"))
    shutil.move(directory / "new-key.pem", directory / "key.pem")
    shutil.move(directory / "new-cert.pem", directory / "cert.pem")


async def test_renewed_certificate_served_without_restart(
    served: tuple[int, Path, trustme.CA], caplog: pytest.LogCaptureFixture
) -> None:
    port, directory, ca = served
    assert await served_name(port, directory / "ca.pem") == "first"
    renew(directory, ca, "second")
    assert await served_name(port, directory / "ca.pem") == "second"

    (directory / "cert.pem").write_text("half a certificate\n")  # a broken renewal
    with caplog.at_level(logging.ERROR, logger="gateway.tls"):
        assert await served_name(port, directory / "ca.pem") == "second"
    assert any("not reloaded" in r.getMessage() for r in caplog.records)

    renew(directory, ca, "third")
    assert await served_name(port, directory / "ca.pem") == "third"
