"""SMPP over TLS: the gateway's link against the simulator's TLS listener, on real certificates.

Server verified (CA, host name, expiry), mutual TLS accepted and refused, certificate files
re-read on every reconnect, each failure a failed bind with its reason counted and logged, and
never a clear-text attempt.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.binds import BindPool
from gateway.esme.link import SmppLink
from gateway.esme.throttle import Backoff
from gateway.metrics import Metrics
from gateway.outbox.base import MemoryOutbox
from gateway.settings import SmscProfile
from gateway.tls import server_context
from simulator.controller import SimulatorController
from tests.tls_certs import Certs


def profile(port: int, host: str = "127.0.0.1", **files: Path) -> SmscProfile:
    query = "&".join(f"{k}={v}" for k, v in files.items())
    return SmscProfile.from_url(f"smpps://idea24:idea24@{host}:{port}?{query}&response_timeout=2")


def fast_link(p: SmscProfile) -> SmppLink:
    return SmppLink(p, backoff=Backoff(0.02, 0.1), connect_timeout=3.0, stable_after=0.5)


async def tls_failure(link: SmppLink, reason: str, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while link.stats.tls_failures.get(reason, 0) == 0:  # noqa: ASYNC110 - counter, no event
            await asyncio.sleep(0.01)


@pytest.fixture
async def sim(certs: Certs) -> AsyncIterator[SimulatorController]:
    async with SimulatorController(tls=certs.listener()) as controller:
        yield controller


@pytest.fixture
async def mutual(certs: Certs) -> AsyncIterator[SimulatorController]:
    context = certs.listener(mutual=True)
    async with SimulatorController(tls=context) as controller:
        yield controller


def tls_port(sim: SimulatorController) -> int:
    assert sim.smpps_address is not None
    return sim.smpps_address[1]


async def test_binds_over_tls_and_the_simulator_sees_tls(
    sim: SimulatorController, certs: Certs
) -> None:
    link = fast_link(profile(tls_port(sim), ca=certs.ca))
    link.start()
    try:
        assert await link.wait_bound(5)
        [session] = sim.smsc.sessions
        assert session.transport is not None
        tls_object = session.transport.get_extra_info("ssl_object")
        assert tls_object is not None and tls_object.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        await link.close()


async def test_wrong_ca_is_a_failed_bind_never_clear_text(
    sim: SimulatorController, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    bad = profile(tls_port(sim), ca=certs.other_ca)
    pool = BindPool([bad], MemoryOutbox(), None, session_options={"backoff_base": 0.02})
    metrics = Metrics()
    async with pool:
        metrics.pool.watch(pool.snapshot)
        [link] = pool.sessions[0].links
        with caplog.at_level(logging.ERROR, logger="gateway.esme.link"):
            await tls_failure(link, "certificate")
        assert not link.bound and sim.smsc.sessions == []  # no session: nothing was bound
        logged = [r.getMessage() for r in caplog.records if r.name == "gateway.esme.link"]
        assert any("the SMSC's certificate did not verify" in m for m in logged), logged
        assert link.stats.bind_failures >= 1 and link.stats.connects == 0
        text = metrics.render().decode()
        assert f'idea24_smpp_tls_failures_total{{bind="{bad.name}",reason="certificate"}}' in text


async def test_host_name_is_checked(certs: Certs) -> None:
    context = server_context(str(certs.misnamed_cert), str(certs.misnamed_key))
    async with SimulatorController(tls=context) as sim:
        link = fast_link(profile(tls_port(sim), ca=certs.ca))  # right CA, wrong name
        link.start()
        try:
            await tls_failure(link, "certificate")
            assert not link.bound
        finally:
            await link.close()


async def test_expired_certificate_refused(certs: Certs) -> None:
    context = server_context(str(certs.expired_cert), str(certs.expired_key))
    async with SimulatorController(tls=context) as sim:
        link = fast_link(profile(tls_port(sim), ca=certs.ca))
        link.start()
        try:
            await tls_failure(link, "certificate")
            assert not link.bound
        finally:
            await link.close()


async def test_tls_url_against_the_clear_text_port_fails(
    sim: SimulatorController, certs: Certs
) -> None:
    link = fast_link(profile(sim.smpp_address[1], ca=certs.ca))
    link.start()
    try:
        await tls_failure(link, "handshake")
        assert not link.bound
        assert all(s.system_id is None for s in sim.smsc.sessions)  # no bind in clear text
    finally:
        await link.close()


async def test_mutual_tls_accepted_with_a_client_certificate(
    mutual: SimulatorController, certs: Certs
) -> None:
    p = profile(tls_port(mutual), ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    link = fast_link(p)
    link.start()
    try:
        assert await link.wait_bound(5)
        [session] = mutual.smsc.sessions
        assert session.transport is not None
        peer_cert = session.transport.get_extra_info("peercert")
        assert peer_cert and "idea24-esme.example" in str(peer_cert["subjectAltName"])
    finally:
        await link.close()


@pytest.mark.parametrize("given", ["none", "other_ca"])
async def test_mutual_tls_refused_without_a_trusted_certificate(
    mutual: SimulatorController, certs: Certs, given: str
) -> None:
    """TLS 1.3: the server checks our certificate after our side of the handshake is done and
    (asyncio) closes without an alert: no bind answer on any attempt, reason ``closed``."""
    files = {"ca": certs.ca}
    if given == "other_ca":
        files |= {"cert": certs.other_client_cert, "key": certs.other_client_key}
    link = fast_link(profile(tls_port(mutual), **files))
    link.start()
    try:
        await tls_failure(link, "closed")
        assert not link.bound and mutual.smsc.sessions == []
    finally:
        await link.close()


class AlertingServer:
    """A TLS server on stdlib blocking sockets, in a thread: unlike asyncio's, it sends the
    alert when it refuses a client certificate, as OpenSSL-based SMSCs do."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(2)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                self.refused += 1
            finally:
                conn.close()

    def __enter__(self) -> AlertingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("given", ["none", "other_ca"])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_mutual_tls_refused_with_an_alert(
    certs: Certs, caplog: pytest.LogCaptureFixture, version: ssl.TLSVersion, given: str
) -> None:
    """A server that answers a certificate it does not trust with an alert: reason
    ``refused`` (TLS 1.2: inside the handshake; TLS 1.3: on the first read after it)."""
    context = certs.listener(mutual=True)
    context.minimum_version = context.maximum_version = version
    with AlertingServer(context) as server:
        files = {"ca": certs.ca}
        if given == "other_ca":
            files |= {"cert": certs.other_client_cert, "key": certs.other_client_key}
        link = fast_link(profile(server.port, **files))
        link.start()
        try:
            with caplog.at_level(logging.ERROR, logger="gateway.esme.link"):
                await tls_failure(link, "refused")
            assert not link.bound
            logged = [r.getMessage() for r in caplog.records if r.name == "gateway.esme.link"]
            assert any("client certificate" in m for m in logged), logged
        finally:
            await link.close()


async def test_certificates_are_read_again_on_reconnect(
    sim: SimulatorController, certs: Certs, tmp_path: Path
) -> None:
    """The CA file is replaced while bound: the next connection uses the new file (here a
    wrong CA: refused), and the right one again binds, with no new link or restart."""
    ca = tmp_path / "ca.pem"
    shutil.copy(certs.ca, ca)
    link = fast_link(profile(tls_port(sim), ca=ca))
    link.start()
    try:
        assert await link.wait_bound(5)
        shutil.copy(certs.other_ca, ca)
        sim.drop_all()
        await tls_failure(link, "certificate")
        shutil.copy(certs.ca, ca)
        assert await link.wait_bound(5)
        assert link.stats.connects == 2
    finally:
        await link.close()


async def test_missing_file_is_a_failed_bind_with_its_name(
    sim: SimulatorController, certs: Certs, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "missing.pem"
    link = fast_link(profile(tls_port(sim), ca=certs.ca, cert=gone, key=certs.client_key))
    link.start()
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.esme.link"):
            await tls_failure(link, "files")
        assert any(str(gone) in r.getMessage() for r in caplog.records)
    finally:
        await link.close()


async def test_server_context_needs_tls_1_2(certs: Certs) -> None:
    context = server_context(str(certs.server_cert), str(certs.server_key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_enquire_link_over_tls(sim: SimulatorController, certs: Certs) -> None:
    url = f"smpps://idea24:idea24@127.0.0.1:{tls_port(sim)}?ca={certs.ca}&enquire_link=0.1"
    link = fast_link(SmscProfile.from_url(url))
    link.start()
    try:
        assert await link.wait_bound(5)
        async with asyncio.timeout(5):
            while link.stats.enquire_links_sent < 3:  # noqa: ASYNC110 - a counter, no event
                await asyncio.sleep(0.05)
        assert link.bound and link.stats.timeouts == 0 and link.stats.connects == 1
    finally:
        await link.close()
