"""lb_ha on the controller only (no containers): the role's checks and keepalived.conf as
Ansible renders them for inventories the scenario does not cover (three peers, multicast,
nopreempt, weight, explicit priority), and the checks' messages for bad settings."""

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LBS = {"lb1": "10.30.0.11", "lb2": "10.30.0.12", "lb3": "10.30.0.13"}

PLAYBOOK = textwrap.dedent("""\
    - name: Render keepalived.conf
      hosts: lb
      gather_facts: false
      connection: local
      tasks:
        - name: Checks (and the role's defaults and vars for the next task)
          ansible.builtin.include_role:
            name: lb_ha
            tasks_from: checks.yml
            public: true
        - name: Render
          ansible.builtin.template:
            src: {root}/roles/lb_ha/templates/keepalived.conf.j2
            dest: "{out}/{{{{ inventory_hostname }}}}.conf"
            mode: "0600"
          delegate_to: localhost
    """)


def render(tmp_path, hosts, group_vars=None, host_vars=None):
    inv = {"all": {"children": {"lb": {"hosts": {}, "vars": {"lb_ha_vip": "10.30.0.100", "lb_ha_auth_pass": "s3cret",
                                                              "lb_ha_interface": "ens5", **(group_vars or {})}}}}}
    for h in hosts:
        inv["all"]["children"]["lb"]["hosts"][h] = {"qvc_cluster_address": LBS[h], **(host_vars or {}).get(h, {})}
    (tmp_path / "inv.yml").write_text(json.dumps(inv))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(root=ROOT, out=tmp_path))
    # the repository's ansible.cfg, not molecule's (verify runs with molecule's ANSIBLE_* set)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_ROLES_PATH=str(ROOT / "roles"))
    res = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    confs = {h: (tmp_path / f"{h}.conf").read_text() for h in hosts if (tmp_path / f"{h}.conf").exists()}
    return res, confs


def block(conf, name):
    m = re.search(name + r" \{\n(.*?)\n    \}", conf, re.S)
    return [ln.strip() for ln in m.group(1).splitlines()] if m else None


def test_three_peers_unicast(tmp_path):
    res, confs = render(tmp_path, ["lb1", "lb2", "lb3"])
    assert res.returncode == 0, res.stdout[-3000:]
    for i, (h, addr) in enumerate(LBS.items()):
        c = confs[h]
        assert f"priority {150 - 10 * i}\n" in c
        assert f"unicast_src_ip {addr}\n" in c
        assert sorted(block(c, "unicast_peer")) == sorted(a for x, a in LBS.items() if x != h)
        assert "state BACKUP" in c and "nopreempt" not in c and "weight" not in c
        assert block(c, "virtual_ipaddress") == ["10.30.0.100/32 dev ens5"]
        assert "auth_pass s3cret" in c and "interface ens5" in c


def test_multicast_nopreempt_weight_explicit_priority(tmp_path):
    res, confs = render(tmp_path, ["lb1", "lb2"],
                        group_vars={"lb_ha_unicast": False, "lb_ha_nopreempt": True, "lb_ha_check_weight": -60,
                                    "lb_ha_vip_prefix": 24},
                        host_vars={"lb2": {"lb_ha_priority": 200}})
    assert res.returncode == 0, res.stdout[-3000:]
    assert "priority 150\n" in confs["lb1"] and "priority 200\n" in confs["lb2"]
    for c in confs.values():
        assert "unicast" not in c
        assert "\n    nopreempt\n" in c and "preempt_delay" not in c
        assert "    weight -60\n" in c
        assert block(c, "virtual_ipaddress") == ["10.30.0.100/24 dev ens5"]


@pytest.mark.parametrize("hosts,group_vars,message", [
    (["lb1", "lb2"], {"lb_ha_vip": ""}, "set lb_ha_vip"),
    (["lb1"], {}, "VRRP needs at least two hosts"),
    (["lb1", "lb2"], {"lb_ha_auth_pass": ""}, "set lb_ha_auth_pass"),
    (["lb1", "lb2"], {"lb_ha_auth_pass": "longer-than-8"}, "set lb_ha_auth_pass"),
    (["lb1", "lb2"], {"lb_ha_vip": "10.30.0.12"}, "needs its own IPv4 cluster address"),
    (["lb1", "lb2"], {"lb_ha_virtual_router_id": 300}, "virtual_router_id 1-255"),
], ids=["no-vip", "one-lb", "no-pass", "long-pass", "vip-is-a-peer", "bad-vrid"])
def test_bad_settings_fail_clearly(tmp_path, hosts, group_vars, message):
    res, confs = render(tmp_path, hosts, group_vars=group_vars)
    assert res.returncode != 0 and not confs
    assert message in " ".join(res.stdout.split()), res.stdout[-3000:]
