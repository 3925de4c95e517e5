"""The monitoring role's Prometheus templates, rendered like Ansible renders them.

Renders roles/monitoring/templates/{prometheus.yml,qvc.rules.yml}.j2 with the role's
defaults, the qvc filters and Ansible's core filters for an inventory, and checks that
the scrape targets are exactly what qvc_instances and the inventory say. `promtool` is
not needed here: the role validates both files with it, and the molecule scenario runs it.
"""
from __future__ import annotations

import re
from pathlib import Path

import jinja2
from role_templates import template_env
from jinja2 import meta
import pytest
import yaml

from qvc import qvc_instances

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
WHOLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


def _env() -> jinja2.Environment:
    return template_env("monitoring")


def role_vars(hostvars: dict, groups: dict, inventory_hostname: str = "mon1", **overrides) -> dict:
    """Defaults + vars/main.yml, templated values resolved natively like Ansible's lazy templating."""
    env = _env()
    variables = {}
    for dep in yaml.safe_load((ROLE / "meta" / "main.yml").read_text()).get("dependencies") or []:
        # dependencies' defaults are in scope, as in Ansible (roles/qvc: the cluster-wide settings)
        variables.update(yaml.safe_load((ROLE.parent / dep["role"] / "defaults" / "main.yml").read_text()))
    variables.update(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()))
    variables.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    variables.update(hostvars=hostvars, groups=groups, inventory_hostname=inventory_hostname,
                     ansible_managed="Ansible managed (unit test)", ansible_facts={})
    variables.update(overrides)
    pending = {k for k, v in variables.items() if isinstance(v, str) and "{{" in v}
    while pending:  # resolve a value once everything it references is resolved
        ready = [k for k in pending if not (meta.find_undeclared_variables(env.parse(variables[k])) & pending)]
        assert ready, f"cyclic templated vars: {pending}"
        for key in ready:
            m = WHOLE_EXPR.match(variables[key])
            if m and "{{" not in m.group(1):
                variables[key] = env.compile_expression(m.group(1))(**variables)
            else:
                variables[key] = env.from_string(variables[key]).render(**variables)
            pending.discard(key)
    return variables


def render(name: str, variables: dict) -> dict:
    return yaml.safe_load(_env().get_template(name).render(**variables))


def gpus(n: int, host: str) -> list[dict]:
    return [{"uuid": f"GPU-{host}-{i:02d}", "index": i} for i in range(n)]


def inventory() -> tuple[dict, dict]:
    hostvars = {
        "lb1": {"ansible_host": "10.9.0.1"},
        "mon1": {"ansible_host": "10.9.0.2"},
        # GPUs discovered by nvidia_gpu_facts: instances from nvidia_gpus, DCGM from the fact
        "gpu1": {"ansible_host": "10.9.0.11", "nvidia_gpus": gpus(2, "gpu1"),
                 "ansible_facts": {"nvidia_gpu_count": 2}},
        # GPUs pinned in the inventory, facts not gathered in this run
        "gpu2": {"ansible_host": "10.9.0.12", "qvc_cluster_address": "10.8.0.12", "webui_gpu_ids": [0, 2],
                 "webui_base_port": 9001},
        # CPU-only demo node: instances but no DCGM exporter
        "cpu1": {"ansible_host": "10.9.0.13", "webui_cpu_instances": 2, "monitoring_node_exporter_port": 9200},
    }
    groups = {"all": list(hostvars), "lb": ["lb1"], "monitoring": ["mon1"],
              "gpu_nodes": ["gpu1", "gpu2", "cpu1"], "nfs_server": ["mon1"]}
    return hostvars, groups


def jobs(config: dict) -> dict[str, list[dict]]:
    """job -> [{'target': ..., **labels}]"""
    out: dict[str, list[dict]] = {}
    for sc in config["scrape_configs"]:
        for static in sc.get("static_configs", []):
            for target in static["targets"]:
                out.setdefault(sc["job_name"], []).append({"target": target, **static.get("labels", {})})
    return out


@pytest.fixture
def config() -> dict:
    hostvars, groups = inventory()
    return render("prometheus.yml.j2", role_vars(hostvars, groups))


def test_webui_targets_are_exactly_qvc_instances(config):
    hostvars, groups = inventory()
    expected = [{"target": f"{i['address']}:{i['port']}", "instance_id": i["id"], "host": i["host"],
                 "gpu": i["gpu"] if i["gpu"] is not None else "none", "device": i["device"]}
                for i in qvc_instances(hostvars, groups["gpu_nodes"])]
    assert jobs(config)["qvc_webui"] == expected
    assert len(expected) == 2 + 2 + 2
    assert {"target": "10.8.0.12:9002", "instance_id": "gpu2-1", "host": "gpu2", "gpu": "2",
            "device": "cuda"} in expected


def test_node_exporter_on_every_host_with_its_port(config):
    node = {t["host"]: t for t in jobs(config)["node"]}
    assert set(node) == {"lb1", "mon1", "gpu1", "gpu2", "cpu1"}
    assert node["cpu1"]["target"] == "10.9.0.13:9200"
    assert node["gpu2"]["target"] == "10.8.0.12:9100"  # qvc_cluster_address wins over ansible_host
    assert {h for h, t in node.items() if t["qvc_gpu_node"] == "true"} == {"gpu1", "gpu2", "cpu1"}


def test_nginx_exporter_only_on_load_balancers(config):
    assert jobs(config)["nginx"] == [{"target": "10.9.0.1:9113", "host": "lb1"}]


def test_dcgm_only_where_gpus_exist(config):
    assert [t["host"] for t in jobs(config)["dcgm"]] == ["gpu1", "gpu2"]


def test_dcgm_decision_of_the_exporter_play_wins():
    hostvars, groups = inventory()
    hostvars["gpu1"]["__monitoring_dcgm_enabled"] = False
    config = render("prometheus.yml.j2", role_vars(hostvars, groups))
    assert [t["host"] for t in jobs(config)["dcgm"]] == ["gpu2"]


def test_no_gpu_jobs_without_gpu_nodes():
    hostvars = {"mon1": {"ansible_host": "10.9.0.2"}}
    groups = {"all": ["mon1"], "monitoring": ["mon1"], "gpu_nodes": [], "lb": []}
    config = render("prometheus.yml.j2", role_vars(hostvars, groups))
    assert set(jobs(config)) == {"prometheus", "node"}


def test_globals_rules_and_extras():
    hostvars, groups = inventory()
    extra = [{"job_name": "custom", "static_configs": [{"targets": ["10.1.1.1:1234"]}]}]
    config = render("prometheus.yml.j2", role_vars(
        hostvars, groups, monitoring_scrape_interval="5s", monitoring_alertmanagers=["10.9.0.3:9093"],
        monitoring_extra_scrape_configs=extra, monitoring_external_labels={"cluster": "prod", "dc": "x"}))
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["external_labels"] == {"cluster": "prod", "dc": "x"}
    assert config["rule_files"] == ["/etc/prometheus/rules/qvc.rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["10.9.0.3:9093"]
    assert config["scrape_configs"][-1] == extra[0]


def rules(**overrides) -> dict[str, list[dict]]:
    hostvars, groups = inventory()
    doc = render("qvc.rules.yml.j2", role_vars(hostvars, groups, **overrides))
    return {g["name"]: g["rules"] for g in doc["groups"]}


def test_thresholds_are_variables():
    alerts = {r["alert"]: r for r in rules(monitoring_alert_latency_p95_seconds=12.5,
                                           monitoring_alert_gpu_memory_ratio=0.9,
                                           monitoring_alert_5xx_ratio=0.2,
                                           monitoring_alert_latency_for="3m")["qvc.alerts"]}
    assert alerts["QvcApiLatencyP95High"]["expr"].endswith("> 12.5")
    assert alerts["QvcApiLatencyP95High"]["for"] == "3m"
    assert alerts["QvcGpuMemoryNearFull"]["expr"].endswith("> 0.9")
    assert alerts["QvcHigh5xxRate"]["expr"].endswith("> 0.2")


def test_nfs_alert_per_expected_mountpoint():
    default = [r for r in rules()["qvc.alerts"] if r["alert"] == "QvcNfsMountMissing"]
    # where site.yml mounts the shared tree (playbooks/storage.yml: qvc_shared_root, default /srv/qvc)
    assert [r["labels"]["mountpoint"] for r in default] == ["/srv/qvc/config", "/srv/qvc/models", "/srv/qvc/logs"]
    assert 'mountpoint="/srv/qvc/models"' in default[1]["expr"]
    moved = [r for r in rules(qvc_shared_root="/data/qvc")["qvc.alerts"] if r["alert"] == "QvcNfsMountMissing"]
    assert moved[0]["labels"]["mountpoint"] == "/data/qvc/config"
    local = rules(qvc_storage_backend="local")["qvc.alerts"]
    assert not [r for r in local if r["alert"] == "QvcNfsMountMissing"]
