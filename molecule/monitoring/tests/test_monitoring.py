"""Prometheus, its targets and rules on the converged monitoring scenario.

Every API call runs on the monitoring host (curl to its local Prometheus); waits are
bounded polls, never sleeps without a limit.
"""
import json
import shlex
import time

import pytest

PROM_HOST = "qvc-mon-prom"
WORKER = "qvc-mon-worker"
PROM = "http://127.0.0.1:9090"
# What the inventory renders (molecule.yml): one CPU instance on the worker at base port 8001.
EXPECTED_TARGETS = {
    ("prometheus", "127.0.0.1:9090"),
    ("node", "172.30.77.10:9100"),
    ("node", "172.30.77.11:9100"),
    ("nginx", "172.30.77.11:9113"),
    ("qvc_webui", "172.30.77.11:8001"),
}
ALERTS = {"QvcWebuiInstanceDown", "QvcExporterDown", "QvcLoadBalancerDown", "QvcHigh5xxRate",
          "QvcApiLatencyP95High", "QvcGpuMemoryNearFull", "QvcNfsMountMissing"}
RECORDS = {"qvc:webui_requests:rate1m", "qvc:webui_requests_5xx:ratio_rate5m",
           "qvc:webui_request_duration_seconds:p95_5m", "qvc:webui_request_duration_seconds:p99_5m",
           "qvc:webui_time_to_first_token_seconds:p95_5m", "qvc:gpu_memory_used:ratio"}

testinfra_hosts = [PROM_HOST]


def api(host, path, query=None):
    data = f" --data-urlencode {shlex.quote('query=' + query)}" if query else ""
    out = host.check_output(f"curl -fsS --max-time 5 -G {PROM}{path}{data}")
    body = json.loads(out)
    assert body["status"] == "success", body
    return body["data"]


def poll(fn, timeout=60, interval=2):
    """fn() returns a truthy value when done; the last value is returned or the test fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_prometheus_running_and_ready(host):
    svc = host.service("prometheus")
    assert svc.is_running and svc.is_enabled
    assert host.check_output(f"curl -fsS --max-time 5 {PROM}/-/ready").startswith("Prometheus")


def test_rendered_config_validates(host):
    cmd = host.run("promtool check config /etc/prometheus/prometheus.yml")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


@pytest.mark.parametrize("address", ["172.30.77.10", "172.30.77.11"])
def test_node_exporter_on_every_host(host, address):
    assert "node_exporter_build_info" in host.check_output(f"curl -fsS --max-time 5 http://{address}:9100/metrics")


def test_every_rendered_target_is_up(host):
    state = {}

    def all_up():
        active = api(host, "/api/v1/targets?state=active")["activeTargets"]
        state["found"] = {(t["labels"]["job"], t["labels"]["instance"]): t for t in active}
        return EXPECTED_TARGETS <= set(state["found"]) and all(t["health"] == "up" for t in state["found"].values())

    poll(all_up, timeout=60)
    found = state["found"]
    assert set(found) == EXPECTED_TARGETS, "rendered targets differ (no dcgm job without GPUs)"
    down = {k: t["lastError"] for k, t in found.items() if t["health"] != "up"}
    assert not down, f"targets not up after 60 s: {down}"
    webui = found[("qvc_webui", "172.30.77.11:8001")]["labels"]
    assert webui["instance_id"] == f"{WORKER}-0"
    assert webui["host"] == WORKER
    assert webui["gpu"] == "none"


def test_instance_port_is_firewalled_and_admits_the_monitoring_host(host):
    """The webui firewall is in front of the instance, and the Prometheus host (not in `lb`) is on its list.

    Without the monitoring hosts among the firewall's sources, the scrape above and this curl are dropped."""
    worker = host.get_host(f"docker://{WORKER}")
    rules = worker.check_output("iptables -S QVC-WEBUI")
    assert "-s 172.30.77.10/32 -p tcp -m conntrack --ctorigdstport 8001" in rules, rules
    assert "-s 172.30.77.11/32 -p tcp -m conntrack --ctorigdstport 8001" in rules, rules
    assert "--ctorigdstport 8001 --ctdir ORIGINAL -j DROP" in rules, rules
    assert worker.check_output("iptables -S DOCKER-USER").splitlines()[1] == "-A DOCKER-USER -j QVC-WEBUI"
    # The instance is a container behind Docker's DNAT: the request crosses FORWARD -> DOCKER-USER.
    assert "qvc-fake-webui-0" in worker.check_output("docker ps --format '{{.Names}}'")
    assert "qvc_webui_requests_total" in host.check_output("curl -fsS --max-time 5 http://172.30.77.11:8001/metrics")


def test_webui_request_counter_reaches_prometheus(host):
    for _ in range(5):
        host.check_output("curl -fsS --max-time 5 -X POST http://172.30.77.11:8001/v1/chat/completions")
    query = 'sum(qvc_webui_requests_total{job="qvc_webui",route="/v1/chat/completions"})'

    def value():
        result = api(host, "/api/v1/query", query)["result"]
        return float(result[0]["value"][1]) if result else 0.0

    assert poll(lambda: value() >= 5, timeout=30), f"{query} = {value()} after 30 s"


def test_rules_loaded(host):
    groups = api(host, "/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert ALERTS <= {r["name"] for r in rules if r["type"] == "alerting"}
    assert RECORDS <= {r["name"] for r in rules if r["type"] == "recording"}
    assert all(r["health"] != "err" for r in rules), [r for r in rules if r["health"] == "err"]


def test_nfs_alert_fires_for_the_worker_without_nfs(host):
    def firing():
        alerts = api(host, "/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "QvcNfsMountMissing"
                and a["labels"].get("host") == WORKER and a["state"] == "firing"]

    found = poll(firing, timeout=30)
    assert found, "QvcNfsMountMissing is not firing for the worker"
    assert found[0]["labels"]["mountpoint"] == "/mnt/qvc/models"
