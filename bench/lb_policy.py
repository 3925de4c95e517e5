#!/usr/bin/env python3
"""Benchmark 1: nginx balancing policy vs an ideal join-shortest-queue dispatcher.

    .venv/bin/python -m bench.lb_policy [--duration 20] [--loads 0.5,0.8,0.95] [--seed 7]

3 sim-engine instances (cluster.GPU_PROFILE: Qwen3-VL-4B on an L4/4090-class GPU, TTFT 250 ms,
30 ms/token/sequence, batch capacity 8) behind nginx with least_conn (the role's API upstream),
round robin, and the cookie-hash affinity (the role's UI upstream; 24 users, one cookie each).

1. capacity: a closed loop with exactly (instances x batch) clients through least_conn gives
   the per-request overhead over the emulator's nominal TTFT + (n-1) x TPOT; capacity =
   slots / (mean nominal service of the length mix + that overhead).
2. per load (fraction of that capacity): one open-loop Poisson trace (fixed seed) is replayed
   through each policy in turn; the ideal JSQ latencies come from stats.simulate on the SAME
   trace with the same service times. Also shown: the model's latencies for the assignment
   nginx actually made ("sim@nginx"), which separates dispatch decisions from runtime overhead.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from . import loadgen
from .cluster import GPU_PROFILE, POLICIES, LocalCluster
from .stats import DEFAULT_LENGTH_MIX, mean_length, poisson_trace, simulate, summarize

GOAL = 1.2  # least_conn p95 within 1.2x of ideal JSQ at 80 % load


def nominal(n_tokens: int, profile: dict[str, str]) -> float:
    return (float(profile["SIM_TTFT_MS"]) + (n_tokens - 1) * float(profile["SIM_TPOT_MS"])) / 1000.0


async def calibrate(url: str, profile: dict[str, str], slots: int, seconds: float, seed: int) -> dict:
    rng = random.Random(seed)
    lengths, weights = zip(*DEFAULT_LENGTH_MIX)
    overheads: list[float] = []
    done_in_window = 0
    async with loadgen.session() as s:
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def client() -> None:
            nonlocal done_in_window
            while time.perf_counter() < stop:
                n = rng.choices(lengths, weights)[0]
                r = await loadgen.request(s, url, loadgen.chat_body(n))
                if not r.ok:
                    raise RuntimeError(f"calibration request failed: {r.error}")
                overheads.append(r.latency - nominal(n, profile))
                done_in_window += r.end <= stop

        await asyncio.gather(*(client() for _ in range(slots)))
    overhead = sum(overheads) / len(overheads)
    service = nominal(1, profile) + (mean_length() - 1) * float(profile["SIM_TPOT_MS"]) / 1000 + overhead
    return {"overhead_s": overhead, "mean_service_s": service, "capacity_rps": slots / service,
            "closed_loop_rps": done_in_window / seconds, "samples": len(overheads)}


def run(args: argparse.Namespace) -> dict:
    profile = dict(GPU_PROFILE)
    slots_per = int(profile["SIM_BATCH_CAPACITY"])
    out: dict = {"profile": profile, "instances": args.instances, "length_mix": DEFAULT_LENGTH_MIX,
                 "duration_s": args.duration, "seed": args.seed, "loads": {}}
    t_start = time.time()
    with LocalCluster(args.instances, profile) as cluster:
        lbs = {p: cluster.lb(p) for p in POLICIES}
        addr_index = {b: i for i, b in enumerate(cluster.backends)}
        cal = asyncio.run(calibrate(lbs["least_conn"].url, profile, slots_per * args.instances,
                                     args.calibrate_seconds, args.seed))
        out["calibration"] = cal
        print(f"profile {profile}; {args.instances} instances x {slots_per} slots; length mix "
              f"{DEFAULT_LENGTH_MIX} (mean {mean_length():.1f} tokens)")
        print(f"capacity: {cal['capacity_rps']:.2f} req/s = {slots_per * args.instances} slots / "
              f"{cal['mean_service_s']:.3f} s mean service (measured overhead {cal['overhead_s'] * 1000:.1f} ms/request, "
              f"{cal['samples']} samples; closed-loop completions {cal['closed_loop_rps']:.2f} req/s)\n")
        hdr = (f"{'load':>5} {'policy':<12} {'n':>4} {'err':>3} {'thr/s':>6} {'p50 s':>6} {'p95 s':>6} "
               f"{'p99 s':>6} {'p95/JSQ':>7} {'wait95':>7} {'JSQ wait95':>10} {'sim@nginx p95':>13}  per-instance")
        for k, load in enumerate(args.loads):
            rate = load * cal["capacity_rps"]
            trace = poisson_trace(rate, args.duration, args.seed + k)
            arrivals = [a.t for a in trace]
            services = [nominal(a.max_tokens, profile) + cal["overhead_s"] for a in trace]
            ideal = simulate(arrivals, services, args.instances, slots_per, "jsq")
            ideal_s = summarize(ideal)
            # wait = latency - nominal GPU time (so both sides include the per-request overhead)
            ideal_wait = summarize([l - s + cal["overhead_s"] for l, s in zip(ideal, services)])
            row = {"rate_rps": rate, "requests": len(trace), "jsq": {**ideal_s, "wait_p95": ideal_wait["p95"]},
                   "policies": {}}
            print(f"--- load {load:.0%}: {rate:.2f} req/s, {len(trace)} requests over {args.duration:.0f} s; "
                  f"ideal JSQ p50 {ideal_s['p50']:.2f} p95 {ideal_s['p95']:.2f} p99 {ideal_s['p99']:.2f} s")
            print(hdr)
            for policy in POLICIES:
                res = asyncio.run(loadgen.open_loop(lbs[policy].url, trace, affinity=(policy == "hash")))
                ok = [r for r in res if r.ok]
                lat = [r.latency for r in ok]
                s = summarize(lat)
                span = max(r.end for r in res) - min(r.start for r in res)
                idx = [addr_index.get(r.upstream.split(",")[-1].strip(), 0) for r in res]
                per = [idx.count(i) for i in range(args.instances)]
                sim_same = summarize(simulate(arrivals, services, args.instances, slots_per, assign=idx))
                wait = summarize([r.latency - nominal(r.tag.max_tokens, profile) for r in ok])
                ratio = s["p95"] / ideal_s["p95"]
                row["policies"][policy] = {**s, "errors": len(res) - len(ok), "throughput_rps": len(ok) / span,
                                           "p95_over_jsq": ratio, "wait_p95": wait["p95"],
                                           "sim_same_assignment_p95": sim_same["p95"], "per_instance": per}
                print(f"{load:>5.0%} {policy:<12} {len(res):>4} {len(res) - len(ok):>3} {len(ok) / span:>6.2f} "
                      f"{s['p50']:>6.2f} {s['p95']:>6.2f} {s['p99']:>6.2f} {ratio:>7.2f} {wait['p95']:>7.2f} "
                      f"{ideal_wait['p95']:>10.2f} {sim_same['p95']:>13.2f}  {per}")
            out["loads"][f"{load:g}"] = row
            print()
    lc80 = out["loads"].get("0.8", {}).get("policies", {}).get("least_conn")
    if lc80:
        met = lc80["p95_over_jsq"] <= GOAL
        print(f"goal: least_conn p95 within {GOAL}x of ideal JSQ at 80% load: "
              f"{lc80['p95_over_jsq']:.2f}x -> {'MET' if met else 'NOT MET'}")
        out["goal_met"] = met
    out["wall_s"] = time.time() - t_start
    print(f"wall time {out['wall_s']:.0f} s (2-core shared box: load generator, nginx and instances share the CPUs)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of arrivals per run (default 15)")
    ap.add_argument("--loads", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 0.8, 0.95])
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--calibrate-seconds", type=float, default=12.0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    out = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
