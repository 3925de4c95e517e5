#!/usr/bin/env python3
"""Benchmark 2: throughput with 1..4 sim instances behind nginx (least_conn) over N x the
throughput of one instance measured directly (no LB) in the same run.

    .venv/bin/python -m bench.scaling [--seconds 15] [--max-instances 4] [--tokens 64]

Each configuration gets a closed loop of 2 x (instances x batch capacity) clients, so every
instance always has a full batch and a queue. Throughput is counted over a window after a
warm-up, crediting each request the fraction of its lifetime that falls inside the window
(no quantisation by whole requests). The instances' capacity is set by the emulated GPU
timing (cluster.GPU_PROFILE: batch 8, TTFT 250 ms, 30 ms/token -> 8 / 2.14 s = 3.74 req/s
each), not by CPU: the CPU seconds used by the instances and nginx during each run are
printed next to the result (on this 2-core box the load generator shares the same CPUs).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

import psutil

from . import loadgen
from .cluster import GPU_PROFILE, LocalCluster

GOAL = 0.95


def window_throughput(results: list[loadgen.Result], w0: float, w1: float) -> float:
    """Requests per second completed inside [w0, w1], counting partial requests pro rata."""
    work = 0.0
    for r in results:
        if not r.ok or r.end <= r.start:
            continue
        overlap = min(r.end, w1) - max(r.start, w0)
        if overlap > 0:
            work += overlap / (r.end - r.start)
    return work / (w1 - w0)


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(url: str, clients: int, seconds: float, warmup: float, tokens: int, pids: list[int]) -> dict:
    cpu0, wall0 = cpu_seconds(pids), time.perf_counter()
    results, t0, stop = asyncio.run(loadgen.closed_loop(url, clients, seconds,
                                                        lambda k: loadgen.chat_body(tokens)))
    cpu = cpu_seconds(pids) - cpu0
    wall = time.perf_counter() - wall0
    errors = sum(not r.ok for r in results)
    return {"rps": window_throughput(results, t0 + warmup, stop), "errors": errors, "requests": len(results),
            "cpu_pct": 100 * cpu / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0, help="closed-loop length per configuration")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--max-instances", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64, help="output tokens per request")
    args = ap.parse_args(argv)
    profile = dict(GPU_PROFILE)
    slots = int(profile["SIM_BATCH_CAPACITY"])
    service = (float(profile["SIM_TTFT_MS"]) + (args.tokens - 1) * float(profile["SIM_TPOT_MS"])) / 1000
    t_start = time.time()
    with LocalCluster(args.max_instances, profile) as c:
        inst_pids = [i.proc.pid for i in c.instances]
        base = measure(c.instances[0].url, 2 * slots, args.seconds, args.warmup, args.tokens, inst_pids[:1])
        print(f"profile {profile}, {args.tokens} output tokens/request: nominal {slots / service:.2f} req/s per "
              f"instance (GPU timing bound)")
        print(f"single instance, direct: {base['rps']:.2f} req/s ({base['requests']} requests, "
              f"{base['errors']} errors, instance CPU {base['cpu_pct']:.0f}% of one core)\n")
        print(f"{'N':>2} {'req/s':>7} {'N x single':>10} {'ratio':>6} {'errors':>6} {'CPU% inst+nginx':>16}")
        rows = []
        for n in range(1, args.max_instances + 1):
            lb = c.lb("least_conn", c.backends[:n])
            m = measure(lb.url, 2 * slots * n, args.seconds, args.warmup, args.tokens, inst_pids[:n] + [lb.proc.pid])
            ratio = m["rps"] / (n * base["rps"])
            rows.append(ratio)
            print(f"{n:>2} {m['rps']:>7.2f} {n * base['rps']:>10.2f} {ratio:>6.3f} {m['errors']:>6} {m['cpu_pct']:>15.0f}%")
            lb.stop()
    worst = min(rows)
    print(f"\ngoal: throughput ratio >= {GOAL} for every N: worst {worst:.3f} -> {'MET' if worst >= GOAL else 'NOT MET'}")
    print(f"wall time {time.time() - t_start:.0f} s (2-core shared box)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
