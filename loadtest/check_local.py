#!/usr/bin/env python3
"""End-to-end check of playbooks/loadtest.yml against a local cluster: 3 sim-engine WebUI
instances behind the controller's nginx (bench/cluster.py; all on 127.0.0.1, stopped on exit).

    .venv/bin/python loadtest/check_local.py [--instances 3] [--users 6] [--duration 15s] [--out DIR]

Runs the playbook (video on), then checks its outputs: locust CSVs and HTML, summary.md with
the summary table, summary.json with 100 % success and requests of every type, and a valid
PNG. Exit status 0 when all hold. About 40 s on a 2-core box.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cluster import GPU_PROFILE, LocalCluster  # noqa: E402


def check(out: Path, video: bool) -> list[str]:
    problems = []
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust.html",
                 "summary.md", "summary.json", "latency.png"):
        if not (out / name).is_file() or (out / name).stat().st_size == 0:
            problems.append(f"missing or empty: {name}")
    if problems:
        return problems
    if (out / "latency.png").read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        problems.append("latency.png is not a PNG")
    md = (out / "summary.md").read_text()
    if "| Max RPS | P95 (ms) | Success rate | Errors |" not in md:
        problems.append("summary.md lacks the summary table")
    s = json.loads((out / "summary.json").read_text())
    if not s["requests"]:
        problems.append("no requests")
    if s["success_rate"] != 1.0:
        problems.append(f"success rate {s['success_rate']} (errors: {s['errors']})")
    kinds = {t["name"].split()[0] for t in s["per_type"]}
    want = {"text", "image", "images"} | ({"video"} if video else set())
    if not want <= kinds:
        problems.append(f"request types seen {sorted(kinds)}, expected at least {sorted(want)}")
    if video and s["video_success_rate"] != 1.0:
        problems.append(f"video success rate {s['video_success_rate']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--out", help="output dir (default: a new temp dir, kept)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="qvc-loadtest-"))
    bin_dir = Path(sys.executable).parent
    with LocalCluster(args.instances, GPU_PROFILE) as cluster:
        lb = cluster.lb("least_conn")
        cmd = [str(bin_dir / "ansible-playbook"), "playbooks/loadtest.yml", "-i", "localhost,",
               "-e", f"loadtest_url={lb.url}", "-e", f"loadtest_users={args.users}",
               "-e", f"loadtest_duration={args.duration}", "-e", "loadtest_video=true",
               "-e", f"loadtest_output_dir={out}", "-e", "loadtest_min_success_rate=0.99"]
        print("+", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=ROOT, env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"))
    problems = ([f"ansible-playbook exited {rc}"] if rc else []) + check(out, video=True)
    print(f"\noutputs in {out}")
    for p in problems:
        print("PROBLEM:", p)
    print("local load-test check:", "OK" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
