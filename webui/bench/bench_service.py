#!/usr/bin/env python3
"""Benchmark one qvc-webui instance (not a test).

    webui/.venv/bin/python webui/bench/bench_service.py [--tiny-seconds 15] [--streams 200]

1. tiny random-weight Qwen3-VL on CPU (transformers engine): requests/s with
   ``--tiny-clients`` concurrent clients, 16 new tokens each.
2. sim engine: ``--streams`` concurrent SSE streams (rounds for ``--sim-seconds``); reports
   tokens/s and the service's own overhead per request:
   * server side: end-to-end handler time minus time spent waiting on the engine
     (``overhead_ms`` in the JSON log; also the ``qvc_webui_service_overhead_seconds`` histogram)
   * client side: observed stream duration minus the emulator's nominal TTFT + n*TPOT.
3. the same at the ``--sweep`` stream counts: a table of which levels one instance sustains
   (0 errors, server-side duration p99 within 10 % of the emulator's nominal duration).
The server runs as a separate process (``python -m qvc_webui``) so the client's CPU use does
not count as service time (on a 2-core box they still share the CPUs).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


class Server:
    def __init__(self, env: dict[str, str], port: int, log_dir: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        e = dict(os.environ, PYTHONPATH=str(HERE / "src"), QVC_WEBUI_CONFIG="/nonexistent",
                 QVC_WEBUI_PORT=str(port), QVC_WEBUI_HOST="127.0.0.1", QVC_WEBUI_UI_ENABLED="false",
                 QVC_WEBUI_LOG_DIR=log_dir, QVC_WEBUI_INSTANCE_ID="bench", **env)
        self.proc = subprocess.Popen([sys.executable, "-m", "qvc_webui"], env=e, stdout=subprocess.DEVNULL)
        self.log = Path(log_dir) / "qvc-webui-bench.log"

    def wait(self, timeout: float = 180) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit("server exited")
            time.sleep(0.2)
        raise SystemExit("server not ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def generations(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            d = json.loads(line)
            if d.get("msg") == "generation" and d.get("finish_reason") in ("length", "stop"):
                out.append(d)
        return out


async def tiny_bench(url: str, clients: int, seconds: float) -> dict:
    done, lat = 0, []
    body = {"messages": [{"role": "user", "content": "Describe a red square."}], "max_tokens": 16,
            "temperature": 0}

    async def worker(c: httpx.AsyncClient, end: float) -> None:
        nonlocal done
        while time.monotonic() < end:
            t = time.perf_counter()
            r = await c.post(url + "/v1/chat/completions", json=body)
            r.raise_for_status()
            lat.append(time.perf_counter() - t)
            done += 1

    async with httpx.AsyncClient(timeout=120) as c:
        await c.post(url + "/v1/chat/completions", json=body)
        t0 = time.monotonic()
        await asyncio.gather(*(worker(c, t0 + seconds) for _ in range(clients)))
        el = time.monotonic() - t0
    return {"requests": done, "rps": done / el, "p50_s": pct(lat, 50), "p99_s": pct(lat, 99)}


async def sim_bench(url: str, streams: int, seconds: float, tokens: int, ttft_ms: float, tpot_ms: float) -> dict:
    nominal = (ttft_ms + (tokens - 1) * tpot_ms) / 1000.0
    extra, ttfts, errors, done = [], [], 0, 0
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "stream": True}

    host, port = url.split("//")[1].split(":")
    payload = json.dumps(body).encode()
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload

    async def one(end: float) -> None:
        # minimal HTTP/1.1 keep-alive client: the client must not eat the server's CPU
        nonlocal errors, done
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < end:
            t = time.perf_counter()
            first = None
            writer.write(req)
            buf = b""
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        raise ConnectionError("closed")
                    if first is None and b'"content":"[' in data:
                        first = time.perf_counter() - t
                    buf = buf[-64:] + data
                    if b"data: [DONE]" in buf:
                        break
                extra.append((time.perf_counter() - t - nominal) * 1000)
                ttfts.append(first or float("nan"))
                done += 1
            except (ConnectionError, OSError):
                errors += 1
                break
        writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one(t0 + seconds) for _ in range(streams)))
    el = time.monotonic() - t0
    async with httpx.AsyncClient(timeout=60) as c:
        m = (await c.get(url + "/metrics")).text
    return {"streams": streams, "completed": done, "errors": errors, "req_per_s": done / el,
            "tokens_per_s": done * tokens / el, "nominal_ms": nominal * 1000,
            "client_extra_ms_p50": pct(extra, 50), "client_extra_ms_p99": pct(extra, 99),
            "ttft_ms_p50": pct(ttfts, 50) * 1000, "ttft_ms_p99": pct(ttfts, 99) * 1000,
            "in_flight_after": [l for l in m.splitlines() if l.startswith("qvc_webui_requests_in_flight")][0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-seconds", type=float, default=15)
    ap.add_argument("--tiny-clients", type=int, default=2)
    ap.add_argument("--sim-seconds", type=float, default=15)
    ap.add_argument("--streams", type=int, default=200, help="the level the overhead target is quoted at")
    ap.add_argument("--sweep", type=lambda v: [int(x) for x in v.split(",") if x], default=[100, 400, 800],
                    help="further stream counts for the sustained-streams table (comma list; '' for none)")
    ap.add_argument("--tokens", type=int, default=50)
    ap.add_argument("--ttft-ms", type=float, default=100)
    ap.add_argument("--tpot-ms", type=float, default=20)
    ap.add_argument("--skip-tiny", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE / "scripts"))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_tiny:
            from build_tiny_model import build

            model = build(Path(tmp) / "tiny")
            srv = Server({"QVC_WEBUI_ENGINE": "transformers", "QVC_WEBUI_MODEL": str(model),
                          "QVC_WEBUI_DEVICE": "cpu", "QVC_WEBUI_CONCURRENCY": str(args.tiny_clients)},
                         18431, tmp + "/logs-tiny")
            try:
                srv.wait()
                r = asyncio.run(tiny_bench(srv.url, args.tiny_clients, args.tiny_seconds))
            finally:
                srv.stop()
            print(f"tiny random-weight Qwen3-VL, CPU, transformers, {args.tiny_clients} clients, 16 tokens: "
                  f"{r['rps']:.2f} req/s ({r['requests']} req), latency p50 {r['p50_s'] * 1000:.0f} ms "
                  f"p99 {r['p99_s'] * 1000:.0f} ms")
        levels = [args.streams] + [n for n in args.sweep if n != args.streams]
        rows = []
        for i, n in enumerate(levels):
            srv = Server({"QVC_WEBUI_ENGINE": "sim", "QVC_WEBUI_SIM_TTFT_MS": str(args.ttft_ms),
                          "QVC_WEBUI_SIM_TPOT_MS": str(args.tpot_ms), "QVC_WEBUI_SIM_BATCH_CAPACITY": str(n),
                          "QVC_WEBUI_QUEUE_SIZE": str(max(1000, 2 * n)), "QVC_WEBUI_LOG_LEVEL": "INFO"},
                         18432 + i, f"{tmp}/logs-sim-{n}")
            try:
                srv.wait()
                r = asyncio.run(sim_bench(srv.url, n, args.sim_seconds, args.tokens, args.ttft_ms, args.tpot_ms))
                time.sleep(1.0)
                gens = srv.generations()
            finally:
                srv.stop()
            ov = [g["overhead_ms"] for g in gens]
            late = [g["duration_ms"] - r["nominal_ms"] for g in gens]
            r.update(ov_p50=statistics.median(ov), ov_p99=pct(ov, 99), late_p50=statistics.median(late),
                     late_p99=pct(late, 99), samples=len(ov))
            r["sustained"] = r["errors"] == 0 and r["late_p99"] <= 0.1 * r["nominal_ms"]
            rows.append(r)
            if i == 0:
                print(f"sim engine, {n} concurrent streams x {args.tokens} tokens (ttft {args.ttft_ms} ms, "
                      f"tpot {args.tpot_ms} ms, nominal {r['nominal_ms']:.0f} ms): {r['completed']} streams "
                      f"completed, {r['errors']} errors, {r['req_per_s']:.1f} req/s, {r['tokens_per_s']:.0f} tokens/s")
                print(f"  service overhead (server-side, outside engine): p50 {r['ov_p50']:.2f} ms, "
                      f"p99 {r['ov_p99']:.2f} ms over {r['samples']} requests")
                print(f"  server-side duration over nominal (overhead + event-loop lag absorbed by the "
                      f"emulator's timers): p50 {r['late_p50']:.1f} ms, p99 {r['late_p99']:.1f} ms")
                print(f"  client-observed extra over nominal: p50 {r['client_extra_ms_p50']:.1f} ms, "
                      f"p99 {r['client_extra_ms_p99']:.1f} ms; TTFT p50 {r['ttft_ms_p50']:.0f} ms "
                      f"p99 {r['ttft_ms_p99']:.0f} ms; {r['in_flight_after']}")
        if len(rows) > 1:
            print("sustained concurrent streams (0 errors and server-side duration p99 within 10 % of nominal):")
            print(f"  {'streams':>7} {'req/s':>7} {'tokens/s':>8} {'errors':>6} {'overhead p99':>12} "
                  f"{'over nominal p50/p99':>20}  sustained")
            for r in sorted(rows, key=lambda r: r["streams"]):
                print(f"  {r['streams']:>7} {r['req_per_s']:>7.1f} {r['tokens_per_s']:>8.0f} {r['errors']:>6} "
                      f"{r['ov_p99']:>9.2f} ms {r['late_p50']:>8.1f} / {r['late_p99']:>6.1f} ms  "
                      f"{'yes' if r['sustained'] else 'no'}")
            ok = [r["streams"] for r in rows if r["sustained"]]
            print(f"  => {max(ok) if ok else 0} concurrent streams sustained per instance on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
