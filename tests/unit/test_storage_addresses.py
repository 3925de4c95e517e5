"""playbooks/tasks/storage-addresses.yml for real, under --limit.

storage.yml's NFS clients mount hostvars[<nfs server>].qvc_storage_address and the server exports
to every client's qvc_storage_address. When each host set only its own address, a run limited to
one GPU node failed on the server's missing address, and one limited to the server exported to
the clients' host names instead of their addresses (issue 15, item 3). This runs the task file
with --limit to one host and checks that every storage host's address is known.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
EXPECTED = {"gpu1": "10.0.0.11", "gpu2": "10.0.0.12", "nfs1": "10.0.0.5"}


@pytest.mark.parametrize("limit", ["gpu2", "nfs1", "gpu1,gpu2,nfs1"])
def test_every_storage_address_is_known_under_limit(tmp_path, limit):
    inv = {"all": {"children": {
        "gpu_nodes": {"hosts": {"gpu1": {**LOCAL, "qvc_cluster_address": "10.0.0.11"},
                                "gpu2": {**LOCAL, "ansible_host": "10.0.0.12"}}},
        "nfs_server": {"hosts": {"nfs1": {**LOCAL, "qvc_cluster_address": "10.0.0.5"}}},
        "lb": {"hosts": {"lb1": LOCAL}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inv))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "hosts": "gpu_nodes:nfs_server", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_tasks": str(ROOT / "playbooks/tasks/storage-addresses.yml")},
            {"ansible.builtin.debug": {"msg": "RESULT {{ inventory_hostname }} "
                                              "{{ (groups['gpu_nodes'] + groups['nfs_server']) "
                                              "| map('extract', hostvars, 'qvc_storage_address') | join(',') }}"}}]}]))
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory")
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                          str(tmp_path / "play.yml"), "--limit", limit],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    want = ",".join(EXPECTED[h] for h in ("gpu1", "gpu2", "nfs1"))
    for host in limit.split(","):
        assert f"RESULT {host} {want}" in out, out[-3000:]
