"""deploy/prometheus: the alert rules load, fire when they must and only then, and each one
points the operator at its section of the guide."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, GUIDE, run

PROMETHEUS = DEPLOY / "prometheus"


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def guide_anchors() -> set[str]:
    """GitHub's anchors of the guide's headings: lower case, punctuation dropped, - for spaces."""
    anchors = set()
    for line in GUIDE.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_promtool_accepts_the_rules_and_the_example_config(promtool: str) -> None:
    code, out = run(promtool, "check", "rules", "alerts.yml", cwd=PROMETHEUS)
    assert code == 0, out
    assert "SUCCESS" in out
    code, out = run(promtool, "check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert code == 0, out


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    code, out = run(promtool, "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)
    assert code == 0, out
    assert "SUCCESS" in out


def test_the_unit_tests_can_fail(promtool: str, tmp_path: Any) -> None:
    """A rule that never fires makes alerts_test.yml fail: the tests watch the rules."""
    broken = (
        (PROMETHEUS / "alerts.yml")
        .read_text()
        .replace("expr: idea24_smpp_bind_up == 0", "expr: idea24_smpp_bind_up == 2")
    )
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "alerts_test.yml").write_text((PROMETHEUS / "alerts_test.yml").read_text())
    code, out = run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert code != 0
    assert "Idea24BindDown" in out


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_alert_waits_names_its_severity_and_its_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in ("critical", "warning")
    notes = rule["annotations"]
    assert notes["summary"] and notes["description"]
    page, _, anchor = notes["runbook_url"].partition("#")
    assert page == "docs/operator-guide.md"
    assert anchor in guide_anchors(), f"no section #{anchor} in the guide"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fires, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names <= fires, f"never shown firing: {names - fires}"
    assert names <= quiet, f"never shown quiet: {names - quiet}"


def test_the_alerts_the_guide_asks_for_exist() -> None:
    names = {rule["alert"] for rule in rules()}
    assert {
        "Idea24BindDown",
        "Idea24OutboxGrowing",
        "Idea24Throttled",
        "Idea24FailedMessages",
        "Idea24TurnLatencyHigh",
        "Idea24EventLoopLag",
        "Idea24TurnErrors",
        "Idea24ReceiptRelayDropping",
    } <= names
    by_name = {rule["alert"]: rule for rule in rules()}
    assert by_name["Idea24BindDown"]["for"] == "1m"
    assert "> 0.5" in by_name["Idea24TurnLatencyHigh"]["expr"]
