"""The name check behind tests/deploy/test_served_metrics.py, on a scrape made in-process: it
must catch a wrong metric, label, label value or legend, or the served test proves nothing."""

from __future__ import annotations

import pytest

from gateway.metrics import Metrics
from tests.deploy.promql_names import Exported, dashboard_queries, problems
from tests.gateway.test_metrics import snapshot


@pytest.fixture(scope="module")
def exported() -> Exported:
    metrics = Metrics()
    metrics.pool.watch(snapshot)
    return Exported.from_scrape(metrics.render().decode())


@pytest.mark.parametrize(
    "expr",
    [
        'sum by (channel) (rate(idea24_turns_total{outcome="error"}[5m]))',
        "histogram_quantile(0.99, sum by (instance, le) (rate(idea24_turn_seconds_bucket[5m])))",
        'up{job="idea24"} == 0',
        'idea24_receipts_total{state=~"undeliverable|expired"}',
        'sum(rate(idea24_turns_total{job="$job", instance=~"$instance"}[$__rate_interval]))',
        "idea24_smpp_throttled_total > on (bind) group_left idea24_messages_out_total",
        'label_values(idea24_turns_total{job="$job"}, instance)',
    ],
)
def test_what_the_server_exports_passes(exported: Exported, expr: str) -> None:
    assert problems(expr, exported) == []


@pytest.mark.parametrize(
    ("expr", "legend", "needle"),
    [
        ("rate(idea24_turns_totl[5m])", "", "'idea24_turns_totl' is not exported"),
        ('idea24_turns_total{chanel="sms"}', "", "no label 'chanel'"),
        ('idea24_turns_total{outcome="failed"}', "", "exported values are"),
        ('idea24_receipts_total{state=~"bounced"}', "", "matches none of"),
        ("sum by (bind) (idea24_turns_total)", "", "names label 'bind'"),
        ("idea24_turns_total / on (bind) idea24_messages_out_total", "", "on() (left side)"),
        ("histogram_quantile(0.9, sum by (channel) (idea24_turn_seconds_bucket))", "", "le"),
        ("sum by (channel) (idea24_turns_total)", "{{worker}}", "legend names label 'worker'"),
        ("label_values(idea24_turns_total, shard)", "", "'shard'"),
        ("sum(", "", "does not parse"),
    ],
)
def test_a_wrong_name_is_reported(exported: Exported, expr: str, legend: str, needle: str) -> None:
    found = problems(expr, exported, legend)
    assert any(needle in p for p in found), found


def test_queries_are_found_in_rows_and_variables() -> None:
    dashboard = {
        "panels": [
            {"title": "a", "targets": [{"refId": "A", "expr": "x", "legendFormat": "{{l}}"}]},
            {"type": "row", "panels": [{"title": "b", "targets": [{"refId": "B", "expr": "y"}]}]},
        ],
        "templating": {"list": [{"type": "query", "name": "v", "query": {"query": "z"}}]},
    }
    assert dashboard_queries(dashboard) == [
        ("panel 'a' A", "x", "{{l}}"),
        ("panel 'b' B", "y", ""),
        ("variable $v", "z", ""),
    ]
