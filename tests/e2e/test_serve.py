"""``idea24 serve`` as a subprocess, driven only through its HTTP API and the simulator's.

The walk: HASLO → password SMS → /verify valid once; PAKIET; WLACZ + TAK code;
3IJA change; *100# → 2 → usage → 00 → 4 …; then SIGTERM and a clean exit. The same walk runs on
the embedded defaults (SQLite + memory) and on PostgreSQL + Redis.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from gateway.sms.text import transliterate
from tests.e2e.serve import PASSWORD_RE, Served, serve

pytestmark = pytest.mark.slow


async def walk(s: Served, msisdn: str = "48600000003", code: str = "333333") -> None:
    # HASLO: the reply carries a temporary password, valid once at /verify.
    reply = await s.sms(msisdn, "haslo")
    found = PASSWORD_RE.search(reply)
    assert found, reply
    password = found.group(1)
    status, body = await s.api("/api/v1/passwords/verify", {"msisdn": msisdn, "password": password})
    assert (status, body) == (200, {"valid": True})
    status, body = await s.api("/api/v1/passwords/verify", {"msisdn": msisdn, "password": password})
    assert (status, body) == (401, {"valid": False})

    # The portal asks for a password: it arrives by SMS.
    before = len(await s.mt(msisdn))
    status, _ = await s.api("/api/v1/passwords", {"msisdn": "+" + msisdn})
    assert status == 202
    for _ in range(300):
        messages = await s.mt(msisdn)
        if len(messages) > before:
            break
        await _tick()
    portal = PASSWORD_RE.search(messages[-1]["text"])
    assert portal, messages[-1]
    status, body = await s.api(
        "/api/v1/passwords/verify", {"msisdn": msisdn, "password": portal.group(1)}
    )
    assert body == {"valid": True}

    # PAKIET: minutes and SMS used and left.
    reply = await s.sms(msisdn, "PAKIET")
    assert "Pakiet do" in reply and "SMS" in reply, reply

    # WLACZ: the fee first, then TAK + the subscriber code; a wrong code says attempts left.
    reply = await s.sms(msisdn, "wlacz roaming")
    assert "TAK" in reply and "zl" in transliterate(reply), reply  # auto: one part, plain
    reply = await s.sms(msisdn, "TAK 000000")
    assert "Pozostałe próby" in reply, reply
    reply = await s.sms(msisdn, f"TAK {code}")
    assert "włączona" in reply, reply
    reply = await s.sms(msisdn, "USLUGI")
    assert "ROAMING" in reply.upper() or "Roaming" in reply, reply

    # 3IJA for a subscriber who has it: change the three numbers with confirmation.
    reply = await s.sms("48600000001", "3IJA")
    assert "Trzy i Ja" in reply, reply
    reply = await s.sms("48600000001", "3ija +48 605 111 222, 606-222-333 607333444")
    assert "TAK" in reply, reply
    reply = await s.sms("48600000001", "tak 111111")
    assert "Numery zmienione" in reply, reply
    reply = await s.sms("48600000001", "3IJA")
    assert "605111222" in reply.replace(" ", ""), reply

    # USSD over SMPP: *100# → 2 (usage) → 00 (home) → 4 (Trzy i Ja / Przyjaciel) → back out.
    screen = await s.ussd("48600000001", "*100#")
    assert screen["end"] is False and "2" in screen["text"], screen
    assert len(screen["text"]) <= 182
    screen = await s.ussd("48600000001", "2")
    assert "120" in screen["text"], screen
    if not screen["end"]:
        screen = await s.ussd("48600000001", "00")
        assert "Pakiet" in screen["text"], screen
        screen = await s.ussd("48600000001", "4")
        assert "Trzy i Ja" in screen["text"], screen
    # A shortcut dial lands in the branch directly.
    screen = await s.ussd("48600000002", "*100*2#")
    assert "Pakiet" in screen["text"] or "min" in screen["text"], screen


def _samples(text: str) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value} (comments skipped)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def _stop_cleanly(s: Served) -> None:
    s.proc.send_signal(signal.SIGTERM)
    code = s.proc.wait(timeout=20)
    assert code == 0, s.log()[-3000:]
    log = s.log()
    assert "Traceback" not in log, log[-3000:]


async def test_walk_on_embedded_defaults(tmp_path: Path) -> None:
    async with serve(tmp_path) as s:
        await walk(s)
        async with s.http.get(f"{s.url}/metrics") as r:
            metrics = await r.text()
        probes = [
            ln
            for ln in metrics.splitlines()
            if ln.startswith("idea24_event_loop_lag_seconds_count")
        ]
        assert probes and float(probes[0].split()[-1]) >= 1, "the loop lag probe runs"
        # What the operator guide says to alert on is fed (not merely declared).
        values = _samples(metrics)
        binds = [k for k in values if k.startswith("idea24_smpp_bind_up{")]
        assert binds and all(values[k] == 1.0 for k in binds), binds
        sent = [v for k, v in values.items() if k.startswith("idea24_messages_out_total{")]
        assert sent and sum(sent) >= 10, "every SMS and USSD reply of the walk counted"
        assert values['idea24_turns_total{channel="sms",outcome="replied"}'] >= 8
        assert values["idea24_outbox_depth"] == 0.0
        assert values["idea24_duplicate_mo_total"] == 0.0
        assert values['idea24_receipts_total{state="delivered"}'] >= 1
        await _stop_cleanly(s)
    log = (tmp_path / "serve.log").read_text()
    assert "48600000003" not in log, "an MSISDN reached the log unmasked"


@pytest.mark.redis
@pytest.mark.postgres
async def test_walk_on_postgres_and_redis(
    tmp_path: Path, own_postgres_url: str, redis_server_url: str
) -> None:
    env = {"IDEA24_DATABASE_URL": own_postgres_url, "IDEA24_REDIS_URL": redis_server_url}
    async with serve(tmp_path, env) as s:
        await walk(s)
        await _stop_cleanly(s)
