"""dashboards/qvc-cluster.json queries only metrics that exist.

"Exist" means: the WebUI's own metrics (read from webui/src/qvc_webui/metrics.py, so a
renamed metric there fails this test), the recording rules the monitoring role renders,
and the few exporter metrics listed below. The same check runs over the rules' own
expressions, so a typo in a rule fails too.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from test_monitoring_templates import inventory, render, role_vars

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "qvc-cluster.json"
WEBUI_METRICS = ROOT / "webui" / "src" / "qvc_webui" / "metrics.py"

# Metrics of other exporters the dashboard and rules may use (names as those exporters publish them).
EXPORTER_METRICS = {
    "up",  # Prometheus, per target
    "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",  # dcgm-exporter default counters
    "nginx_up", "nginx_http_requests_total", "nginx_connections_active",  # nginx-prometheus-exporter
    "node_filesystem_size_bytes",  # node exporter
}
SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Gauge": ("",),
    "Info": ("_info",),
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool", "inf", "nan"}
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def webui_metric_names() -> set[str]:
    """Series names the WebUI exports: first argument of every prometheus_client metric constructor."""
    names = set()
    for node in ast.walk(ast.parse(WEBUI_METRICS.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SUFFIXES:
            base = node.args[0].value
            names.update(base + s for s in SUFFIXES[node.func.id])
    return names


def rule_groups() -> dict[str, list[dict]]:
    hostvars, groups = inventory()
    return {g["name"]: g["rules"] for g in render("qvc.rules.yml.j2", role_vars(hostvars, groups))["groups"]}


def recorded_names() -> set[str]:
    return {r["record"] for rules in rule_groups().values() for r in rules if "record" in r}


def known_metrics() -> set[str]:
    return webui_metric_names() | recorded_names() | EXPORTER_METRICS


def referenced_metrics(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (a deliberately small PromQL scanner)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # string literals
    s = re.sub(r"\$\{?\w+\}?", "", s)                    # Grafana variables ($__rate_interval)
    s = re.sub(r"\{[^}]*\}", "", s)                      # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)                     # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)  # label lists
    s = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?[smhdwy]?\b", "", s)  # numbers and durations
    names = set()
    for m in NAME.finditer(s):
        rest = s[m.end():].lstrip()
        if rest.startswith("(") or m.group(0).lower() in KEYWORDS:
            continue  # function or aggregation call, or a keyword
        names.add(m.group(0))
    return names


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return [p for p in out if p.get("type") != "row"]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_scanner_finds_metrics_and_skips_functions():
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(qvc_webui_request_duration_seconds_bucket'
            '{job="qvc_webui", route=~"/v1/.*"}[$__rate_interval]))) / on (instance) group_left up offset 5m')
    assert referenced_metrics(expr) == {"qvc_webui_request_duration_seconds_bucket", "up"}
    assert referenced_metrics("qvc:webui_requests:rate1m > 0.5") == {"qvc:webui_requests:rate1m"}


def test_the_check_can_fail():
    """A misspelt metric is reported (guards against a checker that accepts everything)."""
    unknown = referenced_metrics('sum(rate(qvc_webui_request_total{job="qvc_webui"}[1m]))') - known_metrics()
    assert unknown == {"qvc_webui_request_total"}


def test_webui_metric_names_are_read_from_the_source():
    names = webui_metric_names()
    for expected in ("qvc_webui_requests_total", "qvc_webui_request_duration_seconds_bucket",
                     "qvc_webui_time_to_first_token_seconds_bucket", "qvc_webui_requests_in_flight",
                     "qvc_webui_queue_depth"):
        assert expected in names


def test_every_panel_queries_only_existing_metrics(dashboard):
    known = known_metrics()
    problems = {}
    for panel in panels(dashboard):
        targets = panel.get("targets", [])
        if not targets:
            problems[panel["title"]] = "no queries"
        for t in targets:
            unknown = referenced_metrics(t["expr"]) - known
            if not referenced_metrics(t["expr"]):
                problems[panel["title"]] = f"query reads no metric: {t['expr']}"
            elif unknown:
                problems[panel["title"]] = f"unknown metrics {sorted(unknown)} in {t['expr']}"
    assert not problems, json.dumps(problems, indent=2)


def test_rules_read_only_existing_metrics():
    known = known_metrics()
    bad = {r.get("record") or r["alert"]: sorted(referenced_metrics(r["expr"]) - known)
           for rules in rule_groups().values() for r in rules if referenced_metrics(r["expr"]) - known}
    assert not bad


@pytest.mark.parametrize("needle", [
    "requests/s", "p95", "p99", "first token", "in-flight", "gpu utilization", "gpu memory", "5xx",
])
def test_dashboard_covers(dashboard, needle):
    assert any(needle in p["title"].lower() for p in panels(dashboard)), needle


def test_panel_ids_unique_and_datasource_is_a_variable(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels(dashboard))
