#!/usr/bin/env python3
"""Benchmark 3: latency nginx adds, and whether token streams pass through unbuffered.

    .venv/bin/python -m bench.overhead [--requests 400] [--streams 20]

One sim instance with zero emulated GPU time (TTFT 0, TPOT 0) and one with TPOT 20 ms,
each reached directly and through nginx (the role's API location settings, least_conn).
A single client alternates direct / LB requests (order swapped every iteration) so drift on
this shared 2-core box hits both sides alike:

* small non-streaming requests (1 output token): end-to-end latency;
* streaming requests: time to first body byte;
* streams of 40 tokens at 20 ms/token: gaps between socket reads that carried data. If nginx
  buffered the stream, reads per stream would drop and the gaps would bunch up.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time

from . import loadgen
from .cluster import LocalCluster
from .stats import pct, summarize

GOAL_P50_MS, GOAL_P99_MS = 1.0, 5.0


async def paired(direct: str, lb: str, n: int, body: dict, metric: str) -> tuple[list[float], list[float]]:
    d, l = [], []
    async with loadgen.session() as s:
        for url in (direct, lb):  # warm the connections (client -> nginx -> instance keepalive)
            for _ in range(5):
                await loadgen.request(s, url, body)
        for i in range(n):
            order = ((direct, d), (lb, l)) if i % 2 == 0 else ((lb, l), (direct, d))
            for url, out in order:
                r = await loadgen.request(s, url, body)
                if not r.ok:
                    raise RuntimeError(f"{url}: {r.error}")
                out.append(getattr(r, metric) * 1000)
    return d, l


async def stream_gaps(url: str, n: int, tokens: int) -> tuple[list[float], list[int]]:
    gaps, reads = [], []
    async with loadgen.session() as s:
        for _ in range(n):
            r = await loadgen.request(s, url, loadgen.chat_body(tokens, stream=True))
            if not r.ok:
                raise RuntimeError(f"{url}: {r.error}")
            reads.append(len(r.chunks))
            gaps += [(b - a) * 1000 for a, b in zip(r.chunks, r.chunks[1:])]
    return gaps, reads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="pairs per latency measurement")
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--tpot-ms", type=float, default=20.0)
    args = ap.parse_args(argv)
    t_start = time.time()
    fast = {"SIM_TTFT_MS": "0", "SIM_TPOT_MS": "0", "SIM_BATCH_CAPACITY": "64"}
    paced = {"SIM_TTFT_MS": "0", "SIM_TPOT_MS": str(args.tpot_ms), "SIM_BATCH_CAPACITY": "64"}
    ok = True
    with LocalCluster(1, fast) as c_fast, LocalCluster(1, paced) as c_paced:
        lb_fast = c_fast.lb("least_conn")
        lb_paced = c_paced.lb("least_conn")
        direct = c_fast.instances[0].url
        print(f"{'measurement':<34} {'direct p50':>10} {'LB p50':>8} {'added':>7} | {'direct p99':>10} "
              f"{'LB p99':>8} {'added':>7}  (ms)")
        cases = [("small non-streaming, latency", loadgen.chat_body(1), "latency"),
                 ("streaming, time to first byte", loadgen.chat_body(1, stream=True), "ttfb")]
        for name, body, metric in cases:
            d, l = asyncio.run(paired(direct, lb_fast.url, args.requests, body, metric))
            add50, add99 = pct(l, 50) - pct(d, 50), pct(l, 99) - pct(d, 99)
            met = add50 <= GOAL_P50_MS and add99 <= GOAL_P99_MS
            ok &= met
            print(f"{name:<34} {pct(d, 50):>10.2f} {pct(l, 50):>8.2f} {add50:>7.2f} | {pct(d, 99):>10.2f} "
                  f"{pct(l, 99):>8.2f} {add99:>7.2f}  {'MET' if met else 'NOT MET'} (n={len(d)} each)")
        gd, rd = asyncio.run(stream_gaps(c_paced.instances[0].url, args.streams, args.tokens))
        gl, rl = asyncio.run(stream_gaps(lb_paced.url, args.streams, args.tokens))
        sd, sl = summarize(gd), summarize(gl)
        print(f"\nstreams of {args.tokens} tokens at {args.tpot_ms:g} ms/token, {args.streams} each "
              f"(gap = time between socket reads with data):")
        print(f"{'':<8} {'reads/stream':>12} {'gap p5':>7} {'gap p50':>8} {'gap p95':>8} {'gaps < 5 ms':>11}")
        for name, g, r, s in (("direct", gd, rd, sd), ("via LB", gl, rl, sl)):
            print(f"{name:<8} {sum(r) / len(r):>12.1f} {pct(g, 5):>7.2f} {s['p50']:>8.2f} {s['p95']:>8.2f} "
                  f"{sum(x < 5 for x in g) / len(g):>11.1%}")
        unbuffered = (sum(rl) >= 0.95 * sum(rd) and abs(sl["p50"] - sd["p50"]) <= 0.2 * args.tpot_ms)
        ok &= unbuffered
        print(f"streamed tokens arrive unbuffered through nginx: {'YES' if unbuffered else 'NO'}")
    print(f"\ngoal (<= {GOAL_P50_MS:g} ms added at p50, <= {GOAL_P99_MS:g} ms at p99, unbuffered): "
          f"{'MET' if ok else 'NOT MET'}")
    print(f"wall time {time.time() - t_start:.0f} s (2-core shared box; p99 is sensitive to other load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
