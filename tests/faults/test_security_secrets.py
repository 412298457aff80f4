"""No secret in logs, metrics, error replies or exception messages, after a full run.

A real ``idea24 serve`` (DEBUG logs, PostgreSQL with a password in its URL, an SMPP password)
binds to a simulator running in this process. The run: HASLO by SMS, a portal password request
and verifications (wrong, right, reused), a wrong API key, a paid service confirmed with a wrong
and then the right subscriber code, wrong SMPP binds against the simulator and an ESME that binds
with a wrong password. Then everything captured is searched for every secret value: the
server's whole log (stdout + stderr, through its shutdown), this process's log records with
their exceptions, /metrics, /healthz, every HTTP response body and every SMS sent to a handset
except the two that carry a temporary password to its owner.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from backend import hashing
from gateway.esme.session import SmppSession
from gateway.logs import JsonFormatter
from gateway.settings import SmscProfile
from gateway.web import http
from simulator.bindguard import BindGuard, check_credentials
from simulator.controller import SimulatorController
from tests.e2e.serve import PASSWORD_RE, serve
from tests.faults.fuzz_support import RawPeer, bind

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

API_KEY = "Api-Key-Secret-4d1f"
WRONG_API_KEY = "Wrong-Api-Key-77aa"
SECRET_KEY = "Hash-Secret-Key-9c2e"
SMPP_PASSWORD = "Smpp9pw!"  # at most 8 characters
DB_PASSWORD = "Db-Pass-5e6f"
BAD_BIND_PASSWORDS = ("Bad1bind", "Bad2bind")
ESME_WRONG_PASSWORD = "EsmeBad3"
CODE, WRONG_CODE = "333333", "987654"
WRONG_TEMP_PASSWORD = "WRONGpw9"


async def _sms(sim: SimulatorController, msisdn: str, text: str, seen: int) -> str:
    await sim.inject_mo(msisdn, "2424", text)
    got = await sim.wait_messages(msisdn, seen + 1, wait=20)
    return got[seen].text


async def test_no_secret_anywhere_after_a_full_run(
    tmp_path: Path, own_postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    parts = urlsplit(own_postgres_url)
    db_url = own_postgres_url.replace(f"{parts.username}@", f"{parts.username}:{DB_PASSWORD}@")
    captured: list[str] = []  # everything that must not hold a secret
    password_sms: list[str] = []  # the two SMS that rightly carry a temporary password
    async with SimulatorController(
        accounts={"idea24": SMPP_PASSWORD}, bind_guard=BindGuard(max_failures=50)
    ) as sim:
        host, port = sim.smpp_address
        env = {
            "IDEA24_SMSC": f"smpp://idea24:{SMPP_PASSWORD}@{host}:{port}",
            "IDEA24_DATABASE_URL": db_url,
            "IDEA24_API_KEY": API_KEY,
            "IDEA24_SECRET_KEY": SECRET_KEY,
            "IDEA24_LOG_LEVEL": "DEBUG",
        }
        async with serve(tmp_path, env=env) as served:
            client = served.http

            async def call(path: str, body: dict[str, str], key: str = API_KEY) -> int:
                async with client.post(
                    served.url + path, json=body, headers={"X-API-Key": key}
                ) as r:
                    captured.append(await r.text())
                    return r.status

            # HASLO by SMS.
            reply = await _sms(sim, "48600000001", "HASLO", 0)
            password_sms.append(reply)
            first = PASSWORD_RE.search(reply)
            assert first, reply
            # The portal: a password by SMS, a wrong one, the right one, the right one again.
            assert await call("/api/v1/passwords", {"msisdn": "48600000002"}) == 202
            got = await sim.wait_messages("48600000002", 1, wait=20)
            password_sms.append(got[0].text)
            second = PASSWORD_RE.search(got[0].text)
            assert second, got[0].text
            verify = "/api/v1/passwords/verify"
            wrong = {"msisdn": "48600000002", "password": WRONG_TEMP_PASSWORD}
            right = {"msisdn": "48600000002", "password": second.group(1)}
            assert await call(verify, wrong) == 401
            assert await call(verify, right) == 200
            assert await call(verify, right) == 401
            assert await call("/api/v1/passwords", {"msisdn": "48600000001"}, WRONG_API_KEY) == 401
            # A paid change: a wrong subscriber code, then the right one.
            for seen, text in enumerate(("WLACZ ROAMING", f"TAK {WRONG_CODE}", f"TAK {CODE}")):
                captured.append(await _sms(sim, "48600000003", text, seen))
            assert "błędny" in captured[-2].lower(), captured[-2]
            # Wrong binds against the SMSC, and an ESME with a wrong password.
            for bad in BAD_BIND_PASSWORDS:
                peer = await RawPeer.connect(host, port)
                peer.send(bind(1, "idea24", bad))
                assert (await peer.read_response(1)).status != 0
                await peer.aclose()
            profile = SmscProfile("idea24", ESME_WRONG_PASSWORD, host, port, enquire_link=0.0)
            captured.append(repr(profile))
            esme = SmppSession(profile, backoff_base=0.05, backoff_cap=0.1)
            async with esme:
                assert not await esme.wait_bound(0.5)
            for path in ("/metrics", "/healthz", "/api/v1/openapi.json"):
                async with client.get(served.url + path) as r:
                    captured.append(await r.text())
        # serve() has stopped the server: its log holds start-up to shutdown.
        server_log = served.log()
    mt_texts = [m.text for m in sim.messages() if m.direction == "mt"]
    captured += [t for t in mt_texts if t not in password_sms]
    formatter = JsonFormatter()
    records = [formatter.format(r) for r in caplog.records]
    corpus = {"server log": server_log, "this process": "\n".join(records)}
    corpus["replies, metrics, health"] = "\n".join(captured)
    secrets = {
        "temporary password (SMS)": first.group(1),
        "temporary password (portal)": second.group(1),
        "wrong temporary password": WRONG_TEMP_PASSWORD,
        "subscriber code": CODE,
        "wrong subscriber code": WRONG_CODE,
        "API key": API_KEY,
        "wrong API key": WRONG_API_KEY,
        "secret key": SECRET_KEY,
        "SMPP password": SMPP_PASSWORD,
        "database password": DB_PASSWORD,
        "ESME's wrong SMPP password": ESME_WRONG_PASSWORD,
        **{f"wrong bind password {i}": p for i, p in enumerate(BAD_BIND_PASSWORDS)},
    }
    leaks = [
        f"{name} in {where}"
        for name, value in secrets.items()
        for where, text in corpus.items()
        if value in text
    ]
    assert not leaks, leaks
    lines = server_log.count("\n") + len(records)
    assert lines > 20 and "bind refused: wrong credentials" in corpus["this process"]
    print(
        f"\nsecrets: {len(secrets)} secret values searched in {lines} log lines, "
        f"{len(captured)} replies/metrics/health bodies: 0 found"
    )


def test_secret_comparisons_are_constant_time() -> None:
    """By inspection: every comparison of a secret goes through ``compare_digest`` on bytes.

    The portal's X-API-Key (any header value, encoded first, so non-ASCII cannot raise), the
    simulator's bind password, and the backend's keyed hashes of codes and passwords.
    """
    checks = {
        "portal API key": inspect.getsource(http._check_api_key),
        "SMPP bind password": inspect.getsource(check_credentials),
        "codes and passwords": inspect.getsource(hashing.matches),
    }
    for name, source in checks.items():
        assert "compare_digest(" in source, name
        assert " == " not in source and " != " not in source, name
    assert ".encode()" in checks["portal API key"]
    assert '.encode("latin-1")' in checks["SMPP bind password"]
    print(f"\nconstant time: {len(checks)} secret comparisons use compare_digest")
