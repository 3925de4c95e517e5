"""The preflight role rejects bad inventories with a message naming host and variable.

Runs playbooks/preflight.yml for real (local connection, this machine's facts) against
inventories written per test, and checks the failure text. Nothing is changed on the host.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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
                   "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "qvc_storage_backend": "local", **(all_vars or {})}}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def _preflight(inv):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv), str(ROOT / "playbooks/preflight.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_good_inventory_passes(tmp_path):
    res = _preflight(_inventory(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:]


@pytest.mark.parametrize("gpu_hosts, all_vars, groups, expected", [
    ({"gpu1": {"webui_base_port": "eighty"}}, {}, None, "gpu1: webui_base_port must be an integer port"),
    ({"gpu1": {"webui_cpu_instances": "two"}}, {}, None, "gpu1: webui_cpu_instances must be an integer"),
    ({"gpu1": {"webui_gpu_ids": "0,1"}}, {}, None, "gpu1: webui_gpu_ids must be a list"),
    ({"gpu1": {"webui_base_port": 9099, "webui_cpu_instances": 2, "qvc_cluster_address": "10.0.0.5"}}, {}, None,
     "gpu1: webui_base_port=9099 gives instance ports 9099, 9100, which collide with reserved ports 9100"),
    ({"gpu1": {"webui_cpu_instances": 1, "qvc_cluster_address": "10.0.0.7"},
      "gpu2": {"webui_cpu_instances": 1, "qvc_cluster_address": "10.0.0.7"}}, {}, None,
     "several instances would listen on 10.0.0.7:8001"),
    ({"gpu1": {"webui_cpu_instances": 1}}, {"qvc_storage_backend": "nfs"}, None,
     "inventory group 'nfs_server' is missing or empty"),
    ({"gpu1": {"webui_cpu_instances": 1}}, {"qvc_storage_backend": "ceph"}, None,
     "qvc_storage_backend must be 'nfs' or 'local'"),
    ({}, {}, None, "inventory group 'gpu_nodes' is missing or empty"),
    ({"gpu1": {"webui_cpu_instances": 1, "ansible_host": "gpu1.example.com"}}, {}, None,
     "gpu1: the cluster address must be an IPv4 address, because the instance ports are published on it (docker) "
     "and firewalled with iptables; got 'gpu1.example.com' from ansible_host"),
    ({"gpu1": {"webui_cpu_instances": 1, "qvc_cluster_address": "fd00::7"}}, {}, None,
     "got 'fd00::7' from qvc_cluster_address"),
])
def test_bad_inventory_fails_naming_the_variable(tmp_path, gpu_hosts, all_vars, groups, expected):
    res = _preflight(_inventory(tmp_path, gpu_hosts=gpu_hosts, all_vars=all_vars, extra_groups=groups))
    assert res.returncode != 0
    assert expected in " ".join(res.stdout.split()), res.stdout[-3000:]
