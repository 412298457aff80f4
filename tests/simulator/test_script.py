"""Conversation scripts: parsing, recording a handset's history, replaying (HTTP and in-process)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.cli import main
from simulator.controller import SimulatorController
from simulator.replay import format_report, replay_over_http
from simulator.script import ScriptError, expectation, load, parse, record
from simulator.store import HandsetMessage
from tests.simulator.peer import EsmeThread

MSISDN = "48600000002"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
ECHO = {
    "name": "echo",
    "msisdn": MSISDN,
    "steps": [
        {"send": "Ile mam minut?"},
        {"expect": "^Echo: Ile mam minut\\?$"},
        {"dial": "*100#"},
        {"expect": "1 Konto\n2 Pakiet$", "end": False},
        {"answer": "2"},
        {"expect": "^Wybrano 2$", "end": True},
    ],
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([], "JSON object"),
        ({"msisdn": "12", "steps": [{"send": "x"}]}, "msisdn: expected a phone number"),
        ({"msisdn": MSISDN, "steps": []}, "steps: expected a non-empty list"),
        ({"msisdn": MSISDN, "steps": [{"send": "a", "dial": "*100#"}]}, "step 1: expected exactly"),
        ({"msisdn": MSISDN, "steps": [{"send": ""}]}, "step 1: send: expected a non-empty"),
        ({"msisdn": MSISDN, "steps": [{"send": "a"}, {"expect": "("}]}, "step 2: expect: not a"),
        ({"msisdn": MSISDN, "steps": [{"dial": "100"}]}, "step 1: dial: expected a code"),
        ({"msisdn": MSISDN, "steps": [{"send": "a", "end": True}]}, "end: true or false"),
        ({"msisdn": MSISDN, "steps": [{"expect": "a", "within": 0}]}, "within: seconds"),
        ({"msisdn": MSISDN, "steps": [{"send": "a", "wait": 1}]}, "unknown keys ['wait']"),
        ({"msisdn": MSISDN, "steps": [{"send": "a", "msisdn": "x"}]}, "step 1: msisdn"),
    ],
)
def test_a_bad_script_is_refused_naming_the_step(script: object, message: str) -> None:
    with pytest.raises(ScriptError, match=re.escape(message)):
        parse(script)


def test_every_script_of_the_suite_parses() -> None:
    files = sorted(SCRIPTS.glob("*.json"))
    assert len(files) >= 4
    for path in files:
        script = load(path)
        actions = {s.action for s in script.steps}
        assert "expect" in actions, path
        # Round trip: what as_dict writes, parse reads back the same.
        assert parse(script.as_dict()) == script


@pytest.mark.parametrize(
    ("text", "other"),
    [
        ("Pakiet do 31.12.2026: minuty 47/120.", "Pakiet do 01.01.2027: minuty 3/120."),
        ("Hasło: Ab3xY9kq\nWażne 10 min", "Hasło: Zz9pQ2mm\nWażne 10 min"),
        ("1 Konto\n2 Pakiet (x)", "1 Konto\n2 Pakiet (x)"),
    ],
)
def test_a_recorded_expectation_holds_on_another_day(text: str, other: str) -> None:
    pattern = expectation(text)
    assert re.search(pattern, text) and re.search(pattern, other)
    assert not re.search(pattern, text + " more")
    assert not re.search(expectation("1 Konto"), "2 Konto")  # menu numbers stay


def test_record_turns_history_into_steps() -> None:
    def message(i: int, msisdn: str, direction: str, kind: str, text: str, **kw: object) -> object:
        return HandsetMessage(i, msisdn, "2424", direction, kind, text, 1, 0, **kw)  # type: ignore[arg-type]

    history = [
        message(1, MSISDN, "mo", "sms", "PAKIET"),
        message(2, MSISDN, "mt", "sms", "Zostało 73 min"),
        message(3, "48600000003", "mo", "ussd", "*100#"),
        message(4, "48600000003", "mt", "ussd", "1 Konto", end=False),
        message(5, "48600000003", "mo", "ussd", "1"),
        message(6, "48600000003", "mt", "ussd", "", end=True),  # timed out: not a screen
    ]
    script = record(history, short_code="2424")  # type: ignore[arg-type]
    assert script.as_dict()["steps"] == [
        {"send": "PAKIET"},
        {"expect": r"^Zostało \w+ min$"},
        {"msisdn": "48600000003", "dial": "*100#"},
        {"msisdn": "48600000003", "expect": "^1 Konto$", "end": False},
        {"msisdn": "48600000003", "answer": "1"},
    ]
    with pytest.raises(ScriptError, match="nothing to record"):
        record([])


async def test_record_over_the_api_then_replay_green_over_http(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    assert sim.http_url
    api = f"{sim.http_url}/api/v1"
    await sim.inject_mo(MSISDN, "2424", "Cześć")  # before the recording starts
    await sim.wait_messages(MSISDN, 1)
    after = max(m.id for m in sim.messages())
    await sim.inject_mo(MSISDN, "2424", "Ile mam minut?")
    await sim.wait_messages(MSISDN, 2)
    assert (await sim.ussd(MSISDN, "*100#")).end is False
    assert (await sim.ussd(MSISDN, "1")).end is True
    params = {"msisdn": MSISDN, "after": str(after), "name": "from the API"}
    async with http.get(f"{api}/script", params=params) as response:
        assert response.status == 200, await response.text()
        recorded = await response.json()
    assert recorded["name"] == "from the API"
    assert [next(iter(s)) for s in recorded["steps"]] == [
        "send",
        "expect",
        "dial",
        "expect",
        "answer",
        "expect",
    ]
    assert recorded["steps"][0] == {"send": "Ile mam minut?"}
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(recorded, ensure_ascii=False), encoding="utf-8")

    result = await replay_over_http(load(path), sim.http_url)
    assert result.ok, format_report(result)
    assert format_report(result).endswith("PASS")

    async with http.get(f"{api}/script", params={"msisdn": "48600000009"}) as response:
        assert response.status == 404
        assert "nothing to record" in (await response.json())["error"]


async def test_replay_in_process_reports_the_first_failure(
    sim: SimulatorController, esme: EsmeThread, http: aiohttp.ClientSession
) -> None:
    assert sim.http_url
    url = f"{sim.http_url}/api/v1/replay"
    async with http.post(url, json=ECHO) as response:
        body = await response.json()
    assert body["ok"] is True, body
    assert [s["ok"] for s in body["steps"]] == [True] * 6

    wrong = {**ECHO, "steps": [*ECHO["steps"][:3], {"expect": "3 Usługi", "end": False}]}  # type: ignore[misc]
    async with http.post(url, json=wrong) as response:
        body = await response.json()
    assert body["ok"] is False
    assert body["steps"][-1]["problem"] == "the text does not match"
    assert body["steps"][-1]["got"] == "Idea24\n1 Konto\n2 Pakiet"

    async with http.post(url, json={"msisdn": MSISDN}) as response:
        assert response.status == 400
        assert "steps" in (await response.json())["error"]


async def test_the_command_exits_1_with_a_diff(
    sim: SimulatorController,
    esme: EsmeThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert sim.http_url
    steps = [{"send": "Hej"}, {"expect": "^Echo: Hej!$", "within": 2}, {"send": "never sent"}]
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({"name": "wrong", "msisdn": MSISDN, "steps": steps}))
    address = sim.http_url.removeprefix("http://")
    code = await asyncio.to_thread(main, ["simulator", "--replay", str(path), "--http", address])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "FAIL   2  48600000002 expect /^Echo: Hej!$/" in out
    assert "- expected /^Echo: Hej!$/" in out
    assert "+ got Echo: Hej" in out
    assert "(1 later steps not run)" in out
    assert [m.text for m in sim.messages(MSISDN) if m.direction == "mo"] == ["Hej"]

    path.write_text(json.dumps(ECHO))
    code = await asyncio.to_thread(main, ["simulator", "--replay", str(path), "--http", address])
    assert code == 0, capsys.readouterr().out


def test_the_command_exits_2_for_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert main(["simulator", "--replay", str(path), "--http", "127.0.0.1:9"]) == 2
    assert "not JSON" in capsys.readouterr().err


async def test_with_no_server_bound_the_report_says_so(
    sim: SimulatorController, tmp_path: Path
) -> None:
    assert sim.http_url
    steps = [{"send": "PAKIET", "within": 0.5}, {"expect": "Pakiet"}]
    script = parse({"name": "alone", "msisdn": MSISDN, "steps": steps})
    result = await replay_over_http(script, sim.http_url)
    assert not result.ok
    report = format_report(result)
    assert 'FAIL   1  48600000002 send "PAKIET"' in report
    assert "SMS not accepted: no ESME acknowledged the message" in report
    assert "(1 later steps not run)" in report

    dial = parse({"msisdn": MSISDN, "steps": [{"dial": "*100#", "within": 0.5}]})
    result = await replay_over_http(dial, sim.http_url)
    assert "USSD: no answer to USSD '*100#' within 0.5s" in format_report(result)
