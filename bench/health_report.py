#!/usr/bin/env python3
"""Benchmark 6: the health report (playbooks/health.yml) at fleet scale, without a fleet.

    .venv/bin/python -m bench.health_report [--sizes 200,800] [--per-host 8]

For each size, a fake inventory of hosts with 8 instances each (probe results set as host vars,
an LB configuration rendered from the same instance list, a quarter of the fleet with a recorded
drain) and the report's own task file (playbooks/tasks/health-report.yml) run by ansible-playbook
on localhost: what the report costs once the probes are in. Also times the filter pass alone.
Prints the wall times, the ratio between the sizes and whether the goal is met (< 10 s at 800,
and growth no worse than linear: ratio <= size ratio x 1.5).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "filter_plugins"))

from qvc import qvc_instances  # noqa: E402
from qvc_health import qvc_health_rows, qvc_health_table  # noqa: E402

GOAL_S = 10.0


def fleet(n_hosts: int, per_host: int) -> dict:
    hostvars = {}
    for h in range(n_hosts):
        name = f"gpu{h:03d}"
        hostvars[name] = {"qvc_cluster_address": f"10.{h // 250}.{h % 250}.1", "webui_cpu_instances": per_host,
                          "qvc_instance_drains": {"qvc-webui-0": "drain"} if h % 4 == 0 else {}}
    for name, hv in hostvars.items():
        hv["_health_probes"] = {
            i["id"]: {"image": "qvc/webui:2", "health": "ok", "model": "Qwen/Qwen3-VL-4B-Instruct", "in_flight": 0}
            for i in qvc_instances(hostvars, [name])}
    return hostvars


def lb_conf(instances: list[dict]) -> str:
    lines = []
    for up in ("qvc_webui_api", "qvc_webui_ui"):
        lines.append(f"upstream {up} {{")
        for i in instances:
            down = " down" if i["drained"] else ""
            lines.append(f"    server {i['address']}:{i['port']} max_fails=2 fail_timeout=10s{down};  # {i['id']} (cpu)")
        lines.append("}")
    return "\n".join(lines) + "\n"


BASELINE = """---
- name: Baseline (same inventory, no report)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Nothing
      ansible.builtin.debug:
        msg: "{{ groups['gpu_nodes'] | length }} hosts"
"""

PLAY = """---
- name: Health report at scale (fake fleet)
  hosts: localhost
  gather_facts: false
  vars:
    _health_conf_text: "{{ lookup('ansible.builtin.file', conf_file) }}"
    _health_fleet: "{{ hostvars | qvc_instances(groups['gpu_nodes'], strict=true) }}"
  tasks:
    - name: The report
      ansible.builtin.include_tasks:
        file: %s
""" % (ROOT / "playbooks" / "tasks" / "health-report.yml")


def run_size(n_instances: int, per_host: int, tmp: Path) -> tuple[float, float, int]:
    n_hosts = n_instances // per_host
    hostvars = fleet(n_hosts, per_host)
    instances = qvc_instances(hostvars, list(hostvars), strict=True)
    conf = lb_conf(instances)
    t0 = time.perf_counter()
    rows = qvc_health_rows(instances, hostvars, conf)
    qvc_health_table(rows)
    filter_s = time.perf_counter() - t0

    inv = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                           "ansible_python_interpreter": sys.executable}},
                   "children": {"gpu_nodes": {"hosts": hostvars}}}}
    (tmp / f"inv{n_instances}.json").write_text(json.dumps(inv))
    (tmp / f"lb{n_instances}.conf").write_text(conf)
    (tmp / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.default",
               ANSIBLE_FACT_CACHING="memory")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp / f"inv{n_instances}.json"),
           str(tmp / "play.yml"), "-e", f"conf_file={tmp / f'lb{n_instances}.conf'}"]
    (tmp / "baseline.yml").write_text(BASELINE)
    t0 = time.perf_counter()
    subprocess.run([cmd[0], "-i", cmd[2], str(tmp / "baseline.yml")], capture_output=True, cwd=ROOT, env=env,
                   check=True)
    base_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    play_s = time.perf_counter() - t0
    out = res.stdout + res.stderr
    expected_bad = sum(1 for i in instances if i["drained"])
    if f"{len(instances)} instance(s), {expected_bad} unhealthy or not routed" not in out:
        print(out[-3000:], file=sys.stderr)
        raise SystemExit(f"report at {n_instances} instances did not print the expected summary")
    return play_s, base_s, filter_s, res.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,800")
    ap.add_argument("--per-host", type=int, default=8)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="qvc-bench-health-") as tmp:
        for n in sizes:
            play_s, base_s, filter_s, rc = run_size(n, args.per_host, Path(tmp))
            results[n] = play_s
            print(f"{n:5d} instances: report play {play_s:6.2f} s (ansible-playbook, exit {rc} = fails on the "
                  f"drained quarter as it should; a one-task play on the same inventory: {base_s:5.2f} s), "
                  f"filter pass {filter_s * 1000:7.1f} ms")
    lo, hi = sizes[0], sizes[-1]
    ratio = results[hi] / results[lo]
    print(f"ratio {hi}/{lo}: {ratio:.2f}x for {hi / lo:.1f}x the instances")
    ok = results[hi] < GOAL_S and ratio <= (hi / lo) * 1.5
    print(f"goal (< {GOAL_S:.0f} s at {hi}, no worse than linear): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
