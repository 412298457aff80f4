"""Which metric and label names a PromQL expression relies on, checked against a real scrape.

A dashboard or an alert that names a series the server does not export shows nothing, or
never fires, without any error: this finds such names. Expressions are parsed with
``promql_parser`` (the Rust PromQL parser); Grafana's ``$variables`` are replaced first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import promql_parser as pq
from prometheus_client.parser import text_string_to_metric_families

#: Labels Prometheus adds to every scraped series, whatever the server exports.
TARGET_LABELS = frozenset({"job", "instance"})
#: Series Prometheus itself writes per scrape target.
SYNTHETIC = {"up": set[str]()}

_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)


@dataclass
class Exported:
    """Series names → label name → values seen, from one ``/metrics`` scrape."""

    series: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @classmethod
    def from_scrape(cls, text: str) -> Exported:
        found = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = found.series.setdefault(sample.name, {})
                for name, value in sample.labels.items():
                    labels.setdefault(name, set()).add(value)
        return found

    def labels(self, metric: str) -> set[str] | None:
        if metric in SYNTHETIC:
            return set(TARGET_LABELS)
        if metric not in self.series:
            return None
        return set(self.series[metric]) | TARGET_LABELS


def expand_grafana(expr: str) -> str:
    """Grafana's variables as Prometheus would see them: ranges become 5m, the rest ``x``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return "5m" if name in ("__rate_interval", "__interval", "__range") else "x"

    return _VARIABLE.sub(value, expr)


def problems(expr: str, exported: Exported, legend: str = "") -> list[str]:
    """What ``expr`` (and its legend) names that the scrape does not have; empty when fine."""
    found: list[str] = []
    match = _LABEL_VALUES.match(expr)
    if match:  # a Grafana variable query: label_values(SELECTOR, LABEL)
        expr, legend = match.group(1), "{{" + match.group(2) + "}}"
    try:
        tree = pq.parse(expand_grafana(expr))
    except Exception as exc:  # the parser raises its own error types
        return [f"does not parse: {exc}"]
    available = _walk(tree, exported, found)
    for name in _LEGEND.findall(legend):
        if name not in available:
            found.append(f"legend names label {name!r}, the query has only {sorted(available)}")
    return found


def _walk(node: Any, exported: Exported, found: list[str]) -> set[str]:
    """Check ``node``; return the label names its result can carry."""
    if isinstance(node, pq.VectorSelector):
        return _selector(node, exported, found)
    if isinstance(node, pq.MatrixSelector):
        return _selector(node.vector_selector, exported, found)
    if isinstance(node, (pq.ParenExpr, pq.UnaryExpr, pq.SubqueryExpr)):
        return _walk(node.expr, exported, found)
    if isinstance(node, pq.AggregateExpr):
        inner = _walk(node.expr, exported, found)
        if node.param is not None:
            _walk(node.param, exported, found)
        modifier = node.modifier
        if modifier is None:
            return set()
        named = set(modifier.labels)
        _require(named, inner, f"{node.op} by/without", found)
        return named if modifier.type == pq.AggModifierType.By else inner - named
    if isinstance(node, pq.BinaryExpr):
        lhs, rhs = _walk(node.lhs, exported, found), _walk(node.rhs, exported, found)
        modifier = node.modifier
        if modifier is not None and modifier.matching is not None:
            named = set(modifier.matching.labels)
            if modifier.matching.type == pq.LabelModifierType.Include:  # on(...): both sides
                _require(named, lhs, "on() (left side)", found)
                _require(named, rhs, "on() (right side)", found)
            else:
                _require(named, lhs | rhs, "ignoring()", found)
        if modifier is not None:
            _require(set(modifier.group_labels or ()), lhs | rhs, "group_left/right", found)
        return lhs | rhs
    if isinstance(node, pq.Call):
        available: set[str] = set()
        for arg in node.args:
            available |= _walk(arg, exported, found)
        if node.func.name == "histogram_quantile":
            if "le" not in available:
                found.append("histogram_quantile over series without an le label")
            available.discard("le")
        return available
    return set()  # number and string literals


def _selector(node: Any, exported: Exported, found: list[str]) -> set[str]:
    matchers = list(node.matchers.matchers)
    name = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
    if name is None:
        found.append(f"selector {node} names no metric")
        return set()
    labels = exported.labels(name)
    if labels is None:
        found.append(f"metric {name!r} is not exported")
        return set()
    for m in matchers:
        if m.name == "__name__":
            continue
        if m.name not in labels:
            found.append(f"{name} has no label {m.name!r} (it has {sorted(labels)})")
            continue
        if m.name in TARGET_LABELS or name in SYNTHETIC:
            continue
        values = exported.series[name][m.name]
        if m.op == pq.MatchOp.Equal and m.value not in values:
            found.append(f'{name}{{{m.name}="{m.value}"}}: exported values are {sorted(values)}')
        if m.op == pq.MatchOp.Re and not any(re.fullmatch(m.value, v) for v in values):
            found.append(f'{name}{{{m.name}=~"{m.value}"}} matches none of {sorted(values)}')
    return labels


def _require(named: Iterable[str], available: set[str], where: str, found: list[str]) -> None:
    for label in named:
        if label not in available:
            found.append(f"{where} names label {label!r}, not among {sorted(available)}")


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Every (where, expression, legend) of a Grafana dashboard: panel targets (rows' nested
    panels included) and query variables."""
    out: list[tuple[str, str, str]] = []

    def panels(items: Iterable[Mapping[str, Any]]) -> None:
        for panel in items:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    where = f"panel {panel.get('title')!r} {target.get('refId')}"
                    out.append((where, target["expr"], target.get("legendFormat", "")))
            panels(panel.get("panels", []))

    panels(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
            out.append((f"variable ${variable['name']}", text, ""))
    return out


def alert_expressions(rules: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]
