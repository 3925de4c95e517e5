#!/usr/bin/env python3
"""One-page summary (markdown) and a PNG plot of a headless locust run.

    summary.py --csv-prefix OUT/locust [--out-dir OUT] [--video] [--url URL] [--users 10] [--duration 30s]

Reads ``<prefix>_stats.csv``, ``_stats_history.csv``, ``_failures.csv`` and (from
loadtest/locustfile.py) ``_ttft.csv``; writes ``summary.md`` (max RPS, P95, success rate,
errors, and the video success rate when video requests ran) and ``latency.png`` (latency
percentiles and throughput over time from the stats history) and ``summary.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

AGG = "Aggregated"


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    p = Path(path)
    if not p.exists():
        return []
    with p.open(newline="") as f:
        return list(csv.DictReader(f))


def num(v: str | None) -> float:
    """A locust CSV number ('N/A' and empty -> NaN)."""
    try:
        return float(v) if v not in (None, "", "N/A") else math.nan
    except ValueError:
        return math.nan


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if not s:
        return math.nan
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def compute_summary(stats: list[dict], history: list[dict], failures: list[dict],
                    ttft: list[dict] | None = None) -> dict:
    """The summary's figures from locust's CSV rows (pure; unit-tested)."""
    agg = next((r for r in stats if r.get("Name") == AGG), None)
    if agg is None:
        raise ValueError("no Aggregated row in the stats CSV (did locust run?)")
    rows = [r for r in stats if r.get("Name") != AGG]
    requests, failed = int(num(agg["Request Count"]) or 0), int(num(agg["Failure Count"]) or 0)
    agg_hist = [r for r in history if r.get("Name") == AGG]
    rps = [num(r["Requests/s"]) for r in agg_hist]
    rps = [x for x in rps if not math.isnan(x)]

    def rate(ok: int, total: int) -> float:
        return ok / total if total else math.nan

    per_type = []
    for r in rows:
        n, f = int(num(r["Request Count"])), int(num(r["Failure Count"]))
        per_type.append({"name": r["Name"], "requests": n, "failures": f, "success_rate": rate(n - f, n),
                         "p50_ms": num(r["50%"]), "p95_ms": num(r["95%"]), "p99_ms": num(r["99%"]),
                         "rps": num(r["Requests/s"])})
    video = [t for t in per_type if t["name"].split()[0] == "video"]
    v_n = sum(t["requests"] for t in video)
    v_f = sum(t["failures"] for t in video)
    errors = sorted(({"name": r["Name"], "error": r["Error"], "count": int(num(r["Occurrences"]))}
                     for r in failures), key=lambda e: -e["count"])
    t_values = [num(r["TTFT seconds"]) * 1000 for r in (ttft or [])]
    t_values = [x for x in t_values if not math.isnan(x)]
    return {
        "requests": requests,
        "failures": failed,
        "success_rate": rate(requests - failed, requests),
        "max_rps": max(rps) if rps else num(agg["Requests/s"]),
        "avg_rps": num(agg["Requests/s"]),
        "p50_ms": num(agg["50%"]),
        "p95_ms": num(agg["95%"]),
        "p99_ms": num(agg["99%"]),
        "video_requests": v_n,
        "video_success_rate": rate(v_n - v_f, v_n) if video else None,
        "errors": errors,
        "per_type": per_type,
        "ttft_n": len(t_values),
        "ttft_p50_ms": pct(t_values, 50),
        "ttft_p95_ms": pct(t_values, 95),
    }


def _f(x: float | None, fmt: str = "{:.0f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pc(x: float | None) -> str:
    return _f(None if x is None else x * 100, "{:.2f} %")


def render_markdown(s: dict, meta: dict, plot_name: str | None = "latency.png") -> str:
    video = s["video_success_rate"] is not None or meta.get("video")
    head = ["Max RPS", "P95 (ms)", "Success rate", "Errors"] + (["Video success rate"] if video else [])
    vals = [_f(s["max_rps"], "{:.2f}"), _f(s["p95_ms"]), _pc(s["success_rate"]), str(s["failures"])]
    if video:
        vals.append(_pc(s["video_success_rate"]) if s["video_success_rate"] is not None else "n/a (no video requests)")
    out = [f"# Load test summary: {meta.get('url', '?')}", "",
           f"{meta.get('users', '?')} users, {meta.get('duration', '?')}, {s['requests']} requests "
           f"(average {_f(s['avg_rps'], '{:.2f}')} req/s, P50 {_f(s['p50_ms'])} ms, P99 {_f(s['p99_ms'])} ms)"
           + (f"; started {meta['started']}" if meta.get("started") else "") + ".", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(vals) + " |", ""]
    if s["ttft_n"]:
        out += [f"Streamed requests: time to first token P50 {_f(s['ttft_p50_ms'])} ms, "
                f"P95 {_f(s['ttft_p95_ms'])} ms ({s['ttft_n']} streams).", ""]
    out += ["## By request type", "", "| Request | Count | Failures | Success rate | P50 (ms) | P95 (ms) | P99 (ms) |",
            "|---|---|---|---|---|---|---|"]
    for t in s["per_type"]:
        out.append(f"| {t['name']} | {t['requests']} | {t['failures']} | {_pc(t['success_rate'])} | "
                   f"{_f(t['p50_ms'])} | {_f(t['p95_ms'])} | {_f(t['p99_ms'])} |")
    out += ["", "## Errors", ""]
    if s["errors"]:
        out += ["| Request | Error | Count |", "|---|---|---|"]
        out += [f"| {e['name']} | {e['error'].replace('|', '/')} | {e['count']} |" for e in s["errors"]]
    else:
        out.append("None.")
    out += ["", "Streamed requests are timed to the end of the stream. Max RPS is the highest value of "
            "locust's rolling requests/s over the run; percentiles are locust's (rounded)."]
    if plot_name:
        out += ["", f"![latency and throughput]({plot_name})"]
    return "\n".join(out) + "\n"


def plot(history: list[dict], path: str | os.PathLike[str], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in history if r.get("Name") == AGG]
    if not rows:
        raise ValueError("empty stats history")
    t0 = num(rows[0]["Timestamp"])
    t = [num(r["Timestamp"]) - t0 for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 6.5))
    for col, style in (("50%", "-"), ("95%", "--"), ("99%", ":")):
        ax1.plot(t, [num(r[col]) for r in rows], style, label=f"P{col[:-1]}")
    ax1.set_ylabel("response time (ms)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    ax1.set_title(title or "latency percentiles (rolling window) and throughput")
    ax2.plot(t, [num(r["Requests/s"]) for r in rows], label="requests/s")
    ax2.plot(t, [num(r["Failures/s"]) for r in rows], color="tab:red", label="failures/s")
    ax2.set_ylabel("per second")
    ax2.set_xlabel("seconds since start")
    ax2.set_ylim(bottom=0)
    ax2.grid(alpha=0.3)
    users = ax2.twinx()
    users.plot(t, [num(r["User Count"]) for r in rows], color="gray", alpha=0.5, label="users")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = users.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv-prefix", required=True)
    ap.add_argument("--out-dir", help="default: the CSV prefix's directory")
    ap.add_argument("--video", action="store_true", help="video was enabled (show its success rate)")
    ap.add_argument("--url", default="?")
    ap.add_argument("--users", default="?")
    ap.add_argument("--duration", default="?")
    ap.add_argument("--started", default="")
    args = ap.parse_args(argv)
    out = Path(args.out_dir or Path(args.csv_prefix).parent)
    out.mkdir(parents=True, exist_ok=True)
    history = read_csv(f"{args.csv_prefix}_stats_history.csv")
    s = compute_summary(read_csv(f"{args.csv_prefix}_stats.csv"), history,
                        read_csv(f"{args.csv_prefix}_failures.csv"), read_csv(f"{args.csv_prefix}_ttft.csv"))
    plot(history, out / "latency.png", f"{args.url}: {args.users} users, {args.duration}")
    meta = {"url": args.url, "users": args.users, "duration": args.duration, "video": args.video,
            "started": args.started}
    (out / "summary.md").write_text(render_markdown(s, meta))
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}
    (out / "summary.json").write_text(json.dumps(clean, indent=2) + "\n")
    print((out / "summary.md").read_text())
    return 0 if s["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
