"""The same SMSC faults over SMPP over TLS: connections cut mid-stream (each reconnect a new TLS
handshake, certificates read again) and throttling. Nothing may be lost or done twice, exactly
as over TCP (tests/faults/test_fault_smsc.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulator.controller import SimulatorController
from tests.faults.harness import Tally, Workload, gateway, until
from tests.faults.harness import seed_subscribers as seed_subs
from tests.faults.test_fault_smsc import assert_exact, connects, every, run
from tests.tls_certs import Certs


@pytest.fixture
async def tls_sim(certs: Certs) -> AsyncIterator[SimulatorController]:
    """The faults' SMSC, listening for SMPP over TLS only."""
    context = certs.listener()
    async with SimulatorController(
        {"idea24": "idea24"}, response_timeout=5.0, tls=context, tls_only=True
    ) as controller:
        yield controller


async def test_connection_dropped_over_tls(
    tls_sim: SimulatorController, certs: Certs, sqlite_url: str, fault_report: list[Tally]
) -> None:
    workload = Workload.build(50, 10)
    await seed_subs(sqlite_url, len(workload.msisdns))
    tls = {"tls": True, "ca": str(certs.ca)}
    async with gateway(tls_sim, sqlite_url, profile=tls) as gw:
        [session] = tls_sim.smsc.describe()["sessions"]
        assert session["tls"] == "TLSv1.3", session
        async with every(0.25, tls_sim.drop_all) as drops:
            tally = await run("smsc drops every 0.25s, TLS", tls_sim, gw, workload, sqlite_url)
        # The last cut may land as the workload ends: the reconnect after it is awaited too.
        await until(lambda: connects(gw) > min(drops[0], 1))
        snap = gw.snapshot()
    bind = next(iter(snap["binds"].values()))
    tally.extra.update(drops=drops[0], reconnects=bind["connects"] - 1)
    fault_report.append(tally)
    # How many cuts land depends on how fast the workload runs (on a quick box it may end
    # within two periods): at least one, and a reconnect over TLS after each.
    assert drops[0] >= 1 and bind["connects"] >= 2, tally.line()
    # A cut between the handshake and the bind_resp looks like a refusal by a TLS 1.3 server
    # (``closed``); nothing else may fail.
    assert set(bind["tls_failures"]) <= {"closed"}, bind["tls_failures"]
    assert_exact(tally, repeats_allowed=drops[0] * 32)


async def test_throttling_over_tls(
    tls_sim: SimulatorController, certs: Certs, sqlite_url: str, fault_report: list[Tally]
) -> None:
    workload = Workload.build(50, 10)
    await seed_subs(sqlite_url, len(workload.msisdns))
    # 500 replies against 150 a second: pushed back however slowly the box runs the workload
    # (at 400/s a loaded box sent fewer than 400 in every second and was never refused).
    tls_sim.faults.update(throttle=150)
    tls = {"tls": True, "ca": str(certs.ca)}
    async with gateway(tls_sim, sqlite_url, profile=tls) as gw:
        tally = await run("smsc throttles at 150/s, TLS", tls_sim, gw, workload, sqlite_url)
        pushbacks = gw.session.pushbacks
    fault_report.append(tally)
    assert pushbacks > 0, tally.line()
    assert_exact(tally)
