#!/usr/bin/env python3
"""Benchmark 5: rollout wall time vs the capacity budget, under load, on a real (test) cluster.

    .venv/bin/python -m bench.rollout --inventory INV [--lb-url http://172.29.77.10] [--budgets 1,2,3]
                                      [--per-host 3] [--clients 2] [--load-s 30]

Runs against a converged cluster (e.g. molecule's `cluster` scenario after `molecule converge -s cluster`:
INV is its inventory, ~/.cache/molecule/<project>/cluster/inventory/ansible_inventory.yml). First scales
every serving host to --per-host CPU instances (webui.yml + lb.yml), then for each budget rolls a new
version label over the fleet with playbooks/rolling-update.yml under load from a client that never
resends (molecule/cluster/loadgen.py --no-resend) and prints: wall time, per-wave times, requests and
failures, and the ratios budget N / budget 1 (targets: budget 2 <= 0.6x, budget 3 <= 0.45x).

The instances are the GPU timing emulator; by default each emulates a 30 s model load (--load-s): on
a fleet every instance loads on its own GPU, side by side, while on this machine real engines would
share the same few cores. Each wave's time minus the load is the replacement's own cost (drain,
recreate, probes, put back; target <= 10 s), printed per budget. --load-s 0 shows the bare playbook
cost, which then dominates.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run(inv: str, playbooks: list[str], extra: dict) -> tuple[float, str, int]:
    cmd = [PLAYBOOK, "-i", inv] + [str(ROOT / "playbooks" / p) for p in playbooks] + ["-e", json.dumps(extra)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - t0, res.stdout + res.stderr, res.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", required=True)
    ap.add_argument("--lb-url", default="http://172.29.77.10")
    ap.add_argument("--budgets", default="1,2,3")
    ap.add_argument("--per-host", type=int, default=3)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--resend", action="store_true", help="let the client resend once on a closed keep-alive")
    ap.add_argument("--log-dir", help="keep each run's playbook output here (with per-task times)")
    ap.add_argument("--load-s", type=float, default=30.0,
                    help="model load time the sim instances emulate (their /healthz says 'loading' that long after "
                         "start; it costs no CPU, so the instances of a wave load side by side, as on their own "
                         "GPUs); 0: the bare sim start, where the playbook's own cost dominates")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    base = {"webui_cpu_instances": args.per_host, "webui_max_unavailable_cap_percent": 50,
            "webui_config": {"sim": {"ttft_ms": 100, "tpot_ms": 10, "load_s": args.load_s}}}
    secs, out, rc = run(args.inventory, ["webui.yml", "lb.yml"], {**base, "webui_version_label": "bench-0"})
    if rc != 0:
        print(out[-4000:])
        return 2
    print(f"scaled to {args.per_host} instances per host and relabelled bench-0 in {secs:.1f} s")
    results = {}
    with tempfile.TemporaryDirectory(prefix="qvc-bench-rollout-") as tmp:
        for n, budget in enumerate(budgets, 1):
            stop, report = Path(tmp) / f"stop{n}", Path(tmp) / f"load{n}.json"
            load = subprocess.Popen([sys.executable, str(ROOT / "molecule" / "cluster" / "loadgen.py"),
                                     "--url", args.lb_url, "--out", str(report), "--stop-file", str(stop),
                                     "--clients", str(args.clients), "--max-seconds", "1800"]
                                    + ([] if args.resend else ["--no-resend"]))
            time.sleep(3)
            secs, out, rc = run(args.inventory, ["rolling-update.yml"],
                                {**base, "webui_version_label": f"bench-{n}", "webui_max_unavailable": budget})
            stop.touch()
            if args.log_dir:
                Path(args.log_dir).mkdir(parents=True, exist_ok=True)
                (Path(args.log_dir) / f"rollout-budget{budget}.log").write_text(out)
            load.wait(timeout=120)
            stats = json.loads(report.read_text())
            waves = re.findall(r"'([^':]+): ([0-9.]+) s'", out)
            results[budget] = secs
            over = sorted(float(t) - args.load_s for _, t in waves)
            print(f"budget {budget}: rollout {secs:6.1f} s (exit {rc}), waves {[(w, float(t)) for w, t in waves]}, "
                  f"load {stats['requests']} requests, {stats['failed']} failed, {stats['reconnects']} resent")
            if over:
                print(f"   per wave outside the emulated {args.load_s:g} s load (drain, recreate, probes, put back): "
                      f"min {over[0]:.1f} s, median {over[len(over) // 2]:.1f} s, max {over[-1]:.1f} s")
            if rc != 0:
                print(out[-4000:])
    b1 = results.get(1)
    if b1:
        print("ratios vs budget 1: " + ", ".join(f"budget {b}: {results[b] / b1:.2f}x" for b in budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
