#!/usr/bin/env python3
"""Benchmark 4: provisioning time of site.yml, via ansible-runner.

    .venv/bin/python -m bench.provision               # run twice: (from scratch) + no-change re-run
    .venv/bin/python -m bench.provision --rerun-only  # only the no-change re-run (cluster already up)

Prints each run's wall time, its changed/failed counts, and the 10 slowest tasks (wall time
of a task = its first host starting to its last host finishing, from ansible-runner events).
Goal: the no-change re-run finishes in < 60 s (and changes nothing).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60.0


def _ts(s: str | None) -> float | None:
    if not s:
        return None
    try:
        return datetime.fromisoformat(s).timestamp()
    except ValueError:
        return None


def slowest_tasks(events: list[dict], n: int = 10) -> list[dict]:
    """Per task (uuid): wall seconds from its first host's start to its last host's end, the
    play, the task name and how many hosts ran it; slowest first (pure; unit-tested)."""
    tasks: dict[str, dict] = {}
    for ev in events:
        if not ev.get("event", "").startswith("runner_on_") or ev["event"] == "runner_on_start":
            continue
        d = ev.get("event_data", {})
        start, end = _ts(d.get("start")), _ts(d.get("end"))
        if start is None or end is None:
            continue
        key = d.get("task_uuid") or f"{d.get('play')}/{d.get('task')}"
        t = tasks.setdefault(key, {"play": d.get("play", ""), "task": d.get("task", ""), "start": start,
                                   "end": end, "hosts": set()})
        t["start"], t["end"] = min(t["start"], start), max(t["end"], end)
        t["hosts"].add(d.get("host", "?"))
    out = [{"seconds": t["end"] - t["start"], "play": t["play"], "task": t["task"], "hosts": len(t["hosts"])}
           for t in tasks.values()]
    return sorted(out, key=lambda x: -x["seconds"])[:n]


def totals(events: list[dict]) -> dict[str, int]:
    """changed / failed / unreachable / ok host-task counts from the playbook_on_stats event."""
    stats = next((e["event_data"] for e in reversed(events) if e.get("event") == "playbook_on_stats"), {})
    return {k: sum((stats.get(k) or {}).values()) for k in ("ok", "changed", "failures", "dark", "skipped")}


def run_once(label: str, playbook: str, inventory: str, extra: list[str]) -> dict:
    import ansible_runner

    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_FORCE_COLOR": "0"}
    with tempfile.TemporaryDirectory(prefix="qvc-provision-") as pdd:
        t0 = time.perf_counter()
        r = ansible_runner.run(private_data_dir=pdd, project_dir=str(ROOT), playbook=playbook,
                               inventory=str(Path(inventory).resolve()), envvars=env, quiet=True,
                               cmdline=" ".join(extra) or None)
        wall = time.perf_counter() - t0
        events = list(r.events)
    res = {"label": label, "status": r.status, "rc": r.rc, "wall_s": wall, **totals(events),
           "slowest": slowest_tasks(events)}
    print(f"== {label}: {wall:.1f} s, status {r.status} (rc {r.rc}); changed {res['changed']}, "
          f"failed {res['failures']}, unreachable {res['dark']}, ok {res['ok']}")
    print("   10 slowest tasks:")
    for t in res["slowest"]:
        print(f"   {t['seconds']:7.1f} s  [{t['hosts']} host{'s' if t['hosts'] != 1 else ''}] {t['play']} : {t['task']}")
    if r.status != "successful":
        failed = [e for e in events if e.get("event") in ("runner_on_failed", "runner_on_unreachable")]
        for e in failed[:5]:
            d = e["event_data"]
            msg = str(d.get("res", {}).get("msg", ""))[:300]
            print(f"   FAILED {d.get('host')}: {d.get('task')}: {msg}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rerun-only", action="store_true", help="only the no-change re-run")
    ap.add_argument("--playbook", default="site.yml", help="relative to the repository root")
    ap.add_argument("-i", "--inventory", default=str(ROOT / "demo/inventory/hosts.yml"))
    ap.add_argument("extra", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = ap.parse_args(argv)
    runs = [] if args.rerun_only else [run_once("first run (from scratch on a fresh demo)", args.playbook,
                                                args.inventory, args.extra)]
    if runs and runs[0]["status"] != "successful":
        print("first run failed; not re-running")
        return 1
    rerun = run_once("no-change re-run", args.playbook, args.inventory, args.extra)
    met = rerun["status"] == "successful" and rerun["wall_s"] < GOAL_S
    print(f"\ngoal: no-change re-run < {GOAL_S:.0f} s: {rerun['wall_s']:.1f} s -> {'MET' if met else 'NOT MET'}; "
          f"changed on re-run: {rerun['changed']} ({'idempotent' if rerun['changed'] == 0 else 'NOT idempotent'})")
    return 0 if rerun["status"] == "successful" else 1


if __name__ == "__main__":
    sys.exit(main())
