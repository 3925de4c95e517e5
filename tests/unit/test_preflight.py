"""The preflight playbook on real inventories: good ones pass, bad ones fail naming host and variable.

Runs playbooks/preflight.yml for real (local connection, this machine's facts) against inventories
written per test (YAML and INI) and against the shipped inventory/, and checks the output. Nothing is
changed on the host. Each rule's logic is covered in test_preflight_rules.py; here the wiring is.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}


def _inventory(tmp_path, gpu_hosts=None, extra_groups=None, all_vars=None):
    gpu_hosts = gpu_hosts if gpu_hosts is not None else {"gpu1": {"webui_cpu_instances": 2,
                                                                   "qvc_cluster_address": "10.0.0.5"}}
    children = {
        "lb": {"hosts": {"lb1": {}}},
        "monitoring": {"hosts": {"lb1": {}}},
        "gpu_nodes": {"hosts": gpu_hosts},
    }
    children.update(extra_groups or {})
    inv = {"all": {"children": children,
                   "vars": {**LOCAL, "qvc_storage_backend": "local", "qvc_cpu_only": True, **(all_vars or {})}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def _preflight(inv, *extra):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory")
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), str(ROOT / "playbooks/preflight.yml"),
                          *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    res.flat = " ".join(res.stdout.split())
    return res


def _local_extra_vars():
    return [arg for k, v in LOCAL.items() for arg in ("-e", f"{k}={v}")]


def test_good_inventory_passes(tmp_path):
    res = _preflight(_inventory(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:]
    assert "WARNING" not in res.stdout


def test_good_ini_inventory_with_odd_topology_passes(tmp_path):
    # one host in every group, NFS storage on itself, GPUs pinned unevenly
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        "[lb]\nbox\n[nfs_server]\nbox\n[monitoring]\nbox\n[gpu_nodes]\nbox webui_gpu_ids='[0, 1, 2]'\n"
        "gpu2 webui_gpu_ids='[0]' qvc_cluster_address=10.0.0.9\n"
        "[all:vars]\nansible_connection=local\nansible_become=false\n"
        f"ansible_python_interpreter={sys.executable}\nqvc_cluster_address=10.0.0.8\n")
    res = _preflight(inv)
    assert res.returncode == 0, res.stdout[-3000:]


def test_shipped_inventory_names_only_the_placeholder_image():
    res = _preflight(ROOT / "inventory", *_local_extra_vars())
    assert res.returncode != 0
    assert "preflight found 1 problem(s):" in res.flat, res.stdout[-3000:]
    assert "gpu1, gpu2: webui_image_name 'registry.example.internal/qvc/webui-cuda' is the example's placeholder" \
        in res.flat


def test_shipped_inventory_passes_once_the_image_is_set():
    res = _preflight(ROOT / "inventory", *_local_extra_vars(), "-e", "webui_image_name=registry.corp.lan/qvc/webui")
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.mark.parametrize("gpu_hosts, all_vars, expected", [
    ({"gpu1": {"webui_cpu_instances": 1, "webui_image_source": "ftp"}}, {},
     "preflight: gpu1: role webui: value of webui_image_source must be one of: pull, archive, build, got: ftp"),
    ({"gpu1": {"webui_base_port": "eighty", "webui_cpu_instances": 1}}, {},
     "preflight: gpu1: role webui: argument 'webui_base_port' is of type str"),
    ({"gpu1": {"webui_cpu_instances": 1}}, {"qvc_storage_backend": "ceph"},
     "Validation of arguments failed: value of qvc_storage_backend must be one of: nfs, local, got: ceph"),
    ({"gpu1": {"webui_cpu_instances": 1, "docker_live_restore": "sometimes"}}, {},
     "preflight: gpu1: role docker: argument 'docker_live_restore' is of type str"),
    ({"gpu1": {"webui_cpu_instances": 1}}, {"qvc_storage_backend": "nfs"},
     "inventory group 'nfs_server' is missing or empty; it is required because qvc_storage_backend is 'nfs' "
     "(set in the inventory) on gpu1"),
    ({}, {}, "inventory group 'gpu_nodes' is missing or empty (preflight_required_groups: lb, gpu_nodes, monitoring"),
    ({"gpu1": {"webui_gpu_ids": [0, 0], "qvc_cpu_only": False}}, {}, "gpu1: webui_gpu_ids lists GPU 0 more than once"),
    ({"gpu1": {"webui_cpu_instances": 1, "qvc_cluster_address": "10.0.0.7"},
      "gpu2": {"webui_cpu_instances": 1, "qvc_cluster_address": "10.0.0.7"}}, {},
     "several instances would listen on 10.0.0.7:8001: gpu1 (qvc-webui-0), gpu2 (qvc-webui-0)"),
    ({"gpu1": {"webui_cpu_instances": 1}}, {"lb_ha_vip": "10.0.0.100"},
     "lb1: lb_ha_vip is set (10.0.0.100) but group 'lb' has 1 host (lb1)"),
])
def test_bad_inventory_fails_naming_the_variable(tmp_path, gpu_hosts, all_vars, expected):
    res = _preflight(_inventory(tmp_path, gpu_hosts=gpu_hosts, all_vars=all_vars))
    assert res.returncode != 0
    assert expected in res.flat, res.stdout[-3000:]


def test_lb_and_gpu_node_on_one_host_keeps_instances_off_the_lb_port(tmp_path):
    inv = _inventory(tmp_path, gpu_hosts={"lb1": {"webui_cpu_instances": 2, "webui_base_port": 8079,
                                                  "qvc_cluster_address": "10.0.0.5"}},
                     all_vars={"nginx_lb_http_port": 8080})
    res = _preflight(inv)
    assert res.returncode != 0
    assert "lb1: webui_base_port=8079 gives instance ports 8079, 8080, which collide with ports this host already " \
           "uses: 8080 = the load balancer (nginx_lb_http_port)" in res.flat, res.stdout[-3000:]


def test_a_typo_is_a_warning_with_a_suggestion(tmp_path):
    res = _preflight(_inventory(tmp_path, gpu_hosts={"gpu1": {"webui_cpu_instances": 1, "webui_cpu_instance": 3,
                                                              "qvc_cluster_address": "10.0.0.5"}}))
    assert res.returncode == 0, res.stdout[-3000:]
    assert ("preflight: WARNING gpu1: webui_cpu_instance is not a variable of any role of this collection; "
            "did you mean webui_cpu_instances?") in res.flat
