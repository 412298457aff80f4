"""``idea24 check`` as a deployment pipeline runs it: one line per check, stop at the first
failure, exit 0 / 1 / 2 — against a real simulator, SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.check import check_bind
from gateway.settings import SmscProfile
from gateway.smpp.codec import SmppConnection
from gateway.smpp.pdu import Pdu, Status
from simulator.controller import SimulatorController
from tests.conftest import free_port
from tests.e2e.serve import idea24_command
from tests.tls_certs import Certs


async def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Run ``idea24 check ARGS`` as a subprocess (the test's simulator keeps serving meanwhile):
    exit code, stdout lines, stderr."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDEA24_")}
    proc = await asyncio.create_subprocess_exec(
        *idea24_command(),
        "check",
        "--timeout",
        "5",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


def outcomes(lines: list[str]) -> list[tuple[str, str]]:
    return [(line.split()[0], line.split()[1]) for line in lines]


@pytest.fixture
async def simulator() -> object:
    async with SimulatorController(accounts={"idea24": "s3cret"}) as sim:
        yield sim


def smsc_url(sim: SimulatorController, password: str = "s3cret", query: str = "") -> str:
    host, port = sim.smpp_address
    return f"smpp://idea24:{password}@{host}:{port}{query}"


async def test_all_good_on_sqlite_and_the_simulator(
    tmp_path: Path, simulator: SimulatorController
) -> None:
    code, lines, err = await check(
        "--database-url",
        f"sqlite:///{tmp_path / 'idea24.db'}",
        "--smsc",
        smsc_url(simulator),
        env={"IDEA24_API_KEY": "k" * 24, "IDEA24_SECRET_KEY": "s" * 32},
    )
    assert code == 0, (lines, err)
    assert outcomes(lines) == [
        ("ok", "config"),
        ("ok", "database"),
        ("skip", "redis"),
        ("ok", "smsc"),
    ]
    assert "bind_transceiver accepted" in lines[-1]
    assert lines[-1].endswith(", unbound")
    assert "s3cret" not in "\n".join(lines) + err
    # the bind was closed again: nothing of the check stays on the SMSC
    for _ in range(250):
        if not simulator.smsc.sessions:
            break
        await asyncio.sleep(0.02)
    assert not simulator.smsc.sessions


@pytest.mark.redis
@pytest.mark.postgres
async def test_all_good_on_postgresql_redis_and_two_binds(
    postgres_url: str, redis_server_url: str, simulator: SimulatorController
) -> None:
    code, lines, err = await check(
        "--database-url",
        postgres_url,
        "--redis-url",
        redis_server_url,
        "--smsc",
        smsc_url(simulator, query="?bind=tx%2Brx"),
    )
    assert code == 0, (lines, err)
    assert outcomes(lines) == [
        ("ok", "config"),
        ("warn", "secrets"),  # development keys: said, not fatal
        ("ok", "database"),
        ("ok", "redis"),
        ("ok", "smsc"),
        ("ok", "smsc"),
    ]
    assert "bind_transmitter accepted" in lines[-2]
    assert "bind_receiver accepted" in lines[-1]


async def test_a_bad_database_url_stops_at_the_configuration(tmp_path: Path) -> None:
    code, lines, _ = await check("--database-url", "mysql://root@db/idea24")
    assert code == 2
    assert outcomes(lines) == [("FAIL", "config")]
    assert "IDEA24_DATABASE_URL" in lines[0]


async def test_the_bundled_simulator_on_a_public_address_needs_lab(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'idea24.db'}"
    code, lines, _ = await check("--database-url", db, env={"IDEA24_HTTP": "0.0.0.0:8024"})
    assert code == 2
    assert outcomes(lines) == [("FAIL", "config")] and "--lab" in lines[0]
    code, lines, _ = await check("--database-url", db, "--lab", env={"IDEA24_HTTP": "0.0.0.0:8024"})
    assert code == 0, lines


async def test_an_unreachable_database_stops_the_run(simulator: SimulatorController) -> None:
    port = free_port()
    code, lines, err = await check(
        "--database-url",
        f"postgresql://idea24:dbpass@127.0.0.1:{port}/idea24",
        "--smsc",
        smsc_url(simulator),
    )
    assert code == 1
    assert outcomes(lines)[-1] == ("FAIL", "database")
    assert f"127.0.0.1:{port}" in lines[-1]
    assert "dbpass" not in "\n".join(lines) + err
    assert "Traceback" not in err
    assert not simulator.smsc.sessions  # never reached: the first failure ends the run


async def test_an_unreachable_redis_fails(tmp_path: Path) -> None:
    code, lines, _ = await check(
        "--database-url",
        f"sqlite:///{tmp_path / 'idea24.db'}",
        "--redis-url",
        f"redis://127.0.0.1:{free_port()}/0",
    )
    assert code == 1
    assert outcomes(lines)[-1] == ("FAIL", "redis")


async def test_an_unreachable_smsc_fails(tmp_path: Path) -> None:
    code, lines, _ = await check(
        "--database-url",
        f"sqlite:///{tmp_path / 'idea24.db'}",
        "--smsc",
        f"smpp://idea24:pw@127.0.0.1:{free_port()}",
    )
    assert code == 1
    assert outcomes(lines)[-1] == ("FAIL", "smsc")
    assert "cannot connect" in lines[-1]


async def test_a_wrong_bind_password_is_named(
    tmp_path: Path, simulator: SimulatorController
) -> None:
    code, lines, err = await check(
        "--database-url",
        f"sqlite:///{tmp_path / 'idea24.db'}",
        "--smsc",
        smsc_url(simulator, password="N0tTh1s"),
    )
    assert code == 1
    assert outcomes(lines)[-1] == ("FAIL", "smsc")
    assert "bind_transceiver refused: ESME_RINVPASWD" in lines[-1]
    assert "N0tTh1s" not in "\n".join(lines) + err


async def test_a_message_offered_during_the_check_stays_with_the_smsc(
    tmp_path: Path, simulator: SimulatorController
) -> None:
    """The SMSC may hand the check's bind a waiting MO: it is never acknowledged, so the
    servers still get it."""
    await simulator.smsc.inject_mo("48600000001", "2424", "PAKIET")
    assert len(simulator.smsc.undelivered) == 1
    code, lines, _ = await check(
        "--database-url", f"sqlite:///{tmp_path / 'idea24.db'}", "--smsc", smsc_url(simulator)
    )
    assert code == 0, lines
    for _ in range(250):
        if len(simulator.smsc.undelivered) == 1:
            break
        await asyncio.sleep(0.02)
    assert len(simulator.smsc.undelivered) == 1


async def test_what_the_smsc_asks_during_the_check_is_answered_temporary() -> None:
    """An SMSC that sends a deliver_sm and an enquire_link right after the bind_resp: the MO is
    answered ESME_RX_T_APPN (offered again later, to the servers), the enquire_link ok."""
    answers: list[Pdu] = []
    done = asyncio.Event()

    async def smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = SmppConnection("smsc")
        while not done.is_set():
            data = await reader.read(65536)
            if not data:
                break
            conn.receive_data(data)
            while (pdu := conn.next_event()) is not None:
                assert isinstance(pdu, Pdu), pdu
                if pdu.command == "bind_transceiver":
                    writer.write(conn.send(pdu.response(system_id="FAKE")))
                    mo = {"source_addr": "48600000001", "destination_addr": "2424"}
                    writer.write(conn.send(Pdu("deliver_sm", params={**mo, "short_message": b"X"})))
                    writer.write(conn.send(Pdu("enquire_link")))
                elif pdu.command == "unbind":
                    writer.write(conn.send(pdu.response()))
                    done.set()
                else:
                    answers.append(pdu)
        writer.close()

    server = await asyncio.start_server(smsc, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await check_bind(SmscProfile("idea24", "pw", "127.0.0.1", port), "trx", 5.0)
        await asyncio.wait_for(done.wait(), 5)
    assert result.outcome == "ok", result
    assert "accepted by FAKE" in result.detail
    statuses = {a.command: a.status for a in answers}
    assert statuses == {"deliver_sm_resp": Status.ESME_RX_T_APPN, "enquire_link_resp": 0}


async def test_a_bind_over_tls_is_verified_like_the_link(certs: Certs) -> None:
    """smpps://: the SMSC's certificate is checked against ca= (never clear text); a wrong CA
    and a refused client certificate are named as TLS failures."""
    server = certs.listener(mutual=True)
    async with SimulatorController(accounts={"idea24": "pw"}, tls=server) as sim:
        assert sim.smpps_address is not None
        host, port = sim.smpps_address

        def profile(**files: object) -> SmscProfile:
            query = "&".join(f"{k}={v}" for k, v in files.items())
            return SmscProfile.from_url(f"smpps://idea24:pw@{host}:{port}?{query}")

        mutual = {"cert": certs.client_cert, "key": certs.client_key}
        good = await check_bind(profile(ca=certs.ca, **mutual), "trx", 5.0)
        assert good.outcome == "ok", good
        assert good.detail.endswith(", unbound")
        wrong_ca = await check_bind(profile(ca=certs.other_ca, **mutual), "trx", 5.0)
        assert wrong_ca.outcome == "FAIL"
        assert "TLS: the SMSC's certificate did not verify" in wrong_ca.detail
        no_client_cert = await check_bind(profile(ca=certs.ca), "trx", 5.0)
        assert no_client_cert.outcome == "FAIL"
        assert "TLS:" in no_client_cert.detail, no_client_cert
