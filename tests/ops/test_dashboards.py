"""The Prometheus alert rules and the Grafana dashboard in ops/: well-formed, and every metric
they query is one a running gateway exports (no promtool here: metric names are taken out of
the PromQL by `metric_names`, whose own test is below)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from app.ops.router import PUBLIC_PATHS
from tests.server import LiveServer
from tests.tokens import make_token

OPS = Path(__file__).resolve().parents[2] / "ops"
PROMETHEUS_OWN = {"up"}  # series Prometheus makes for every scrape target
KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan", "by", "without", "on", "ignoring",
            "group_left", "group_right", "offset"}
DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
# what an operator must see: deadlines, workers, sealed or degraded processes, 5xx, latency
WATCHED = {"pgw_dsr_overdue", "pgw_dsr_due_soon", "pgw_jobs_queued_without_worker",
           "pgw_workers_alive", "pgw_sealed", "pgw_ready", "pgw_http_requests_total",
           "pgw_http_request_duration_seconds_bucket"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: what remains once strings, label matchers, ranges,
    grouping label lists, offsets and Grafana variables are taken out, and function names and
    keywords are skipped."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\{[^{}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\boffset\s+-?\w+", "", text)
    found = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {name for name in found if name.lower() not in KEYWORDS}


def grouping(expr: str) -> set[str]:
    return {label.strip() for labels in re.findall(r"\bby\s*\(([^)]*)\)", expr)
            for label in labels.split(",") if label.strip()}


def balanced(expr: str) -> bool:
    depth: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "([{":
            depth.append(char)
        elif char in pairs and (not depth or depth.pop() != pairs[char]):
            return False
    return not depth


def test_metric_names_are_found_in_promql() -> None:
    assert metric_names(
        'sum by (route) (rate(pgw_http_requests_total{status=~"5..", route!="x{y}"}[5m])) '
        '/ on (route) group_left sum by (route) (rate(pgw_b_total[$__rate_interval])) > 0.05'
        ' and max(pgw_c) > max(pgw_c offset 1h) or histogram_quantile(0.99, sum by (le) '
        '(rate(pgw_d_bucket[1m:10s]))) > 1e3 unless up{job="privacy-gateway"} == bool 0'
    ) == {"pgw_http_requests_total", "pgw_b_total", "pgw_c", "pgw_d_bucket", "up"}
    assert metric_names("max(pgw_sealed) == 1") == {"pgw_sealed"}
    assert metric_names('sum(1 - pgw_ready)') == {"pgw_ready"}


@pytest.fixture
def exported(live: LiveServer) -> set[str]:
    """Every series name a running gateway's /metrics exports, after some traffic."""
    client = live.client(make_token())
    client.get("/v1/audit")
    live.client().get("/v1/no/such/thing")
    for path in PUBLIC_PATHS:
        live.client().get(path)
    text = live.client().get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert all(group["name"] and group["rules"] for group in document["groups"])
    return rules


def panels() -> list[dict[str, Any]]:
    dashboard = json.loads((OPS / "grafana" / "privacy-gateway.json").read_text())
    assert dashboard["uid"] == "privacy-gateway"
    [source] = dashboard["templating"]["list"]
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    return list(dashboard["panels"])


def test_every_alert_rule_is_complete(exported: set[str]) -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    used: set[str] = set()
    for rule in rules:
        name = rule["alert"]
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"Pgw[A-Z][A-Za-z0-9]+", name), name
        assert DURATION.match(rule["for"]), f"{name}: for {rule['for']!r}"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert balanced(rule["expr"]), name
        metrics = metric_names(rule["expr"])
        assert metrics, name
        assert metrics <= exported | PROMETHEUS_OWN, f"{name}: {metrics - exported}"
        used |= metrics
        # a label named in a message must survive the expression's aggregation
        labels = set(re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])))
        if re.search(r"\b(?:sum|max|min|avg|count)\b", rule["expr"]):
            assert labels <= grouping(rule["expr"]), f"{name}: {labels}"
    assert used >= WATCHED
    exprs = {rule["alert"]: rule["expr"] for rule in rules}
    assert 'status=~"5.."' in exprs["PgwHighErrorRate"]
    assert "route" in grouping(exprs["PgwHighErrorRate"])
    assert "histogram_quantile(0.99" in exprs["PgwSlowRoute"]
    assert "route" in grouping(exprs["PgwSlowRoute"])


def test_every_dashboard_panel_queries_exported_metrics(exported: set[str]) -> None:
    found = panels()
    assert len({panel["id"] for panel in found}) == len(found)
    used: set[str] = set()
    for panel in found:
        title = panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", title
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, title
        assert panel["targets"], title
        for target in panel["targets"]:
            assert balanced(target["expr"]), title
            metrics = metric_names(target["expr"])
            assert metrics, title
            assert metrics <= exported, f"{title}: {metrics - exported}"
            used |= metrics
    assert used >= WATCHED
