"""deploy/grafana/idea24.json: a dashboard Grafana can import, showing what the operator guide
says to watch. Its queries are checked against a real server in test_served_metrics.py."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy.conftest import DEPLOY
from tests.deploy.promql_names import dashboard_queries

DASHBOARD = DEPLOY / "grafana" / "idea24.json"


def load() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def test_the_dashboard_has_a_uid_a_datasource_variable_and_a_process_filter() -> None:
    dash = load()
    assert dash["uid"] == "idea24" and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert 'instance=~"$instance"' in target["expr"], panel["title"]


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_the_dashboard_shows_what_the_guide_says_to_watch() -> None:
    queries = " ".join(expr for _, expr, _ in dashboard_queries(load()))
    for metric in (
        "idea24_messages_in_total",  # traffic in, by channel
        "idea24_messages_out_total",  # traffic out, by bind and status
        "idea24_turns_total",  # turns by outcome
        "idea24_turn_seconds_bucket",  # latency quantiles
        "idea24_smpp_bind_up",
        "idea24_smpp_window_in_use",
        "idea24_smpp_throttled_total",
        "idea24_outbox_depth",
        "idea24_receipts_total",  # receipts by state
        "idea24_event_loop_lag_seconds_bucket",
        "idea24_message_outcomes_total",
        "idea24_receipts_relayed_total",
    ):
        assert metric in queries, metric
    per_process = [e for _, e, _ in dashboard_queries(load()) if "by (instance" in e]
    assert len(per_process) >= 2  # every process (scrape target) on its own line
