#!/usr/bin/env python3
"""Bounded API load through the LB while a rollout (or scale) runs; writes a JSON report.

    loadgen.py --url http://172.29.77.10 --out report.json --stop-file STOP [--clients 3] [--max-seconds 600]

Each client loops: a non-streaming and a streaming chat completion, alternately, until the
stop file appears or max-seconds pass. A request counts as failed on a non-200 status, a
transport error, or a stream that does not end with `data: [DONE]`.

Like the OpenAI SDKs, a client reconnects and sends the request again once when the LB
closed an idle keep-alive connection just as the request went out (nginx's old workers close
idle client connections on every reload; the request never reached a backend). Those are
counted separately as `reconnects`, never hidden: any other error, or a second one, is a failure.
With --no-resend the client behaves like curl and most HTTP libraries: it never sends a request
twice, and such a closed connection is a failure too.
"""
import argparse
import collections
import json
import os
import threading
import time

import http.client

import requests

BODY = {"messages": [{"role": "user", "content": "Say something short."}], "max_tokens": 4}


def _closed_idle_connection(exc):
    """True when the server closed a kept-alive connection before sending any response."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (http.client.RemoteDisconnected, ConnectionResetError)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    # requests/urllib3 keep the original error only as text in some versions
    return "RemoteDisconnected" in str(exc) or "Connection reset by peer" in str(exc)


def _post(session, url, stream, results, lock):
    try:
        return session.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=60, stream=stream)
    except requests.ConnectionError as exc:
        if results.get("no_resend") or not _closed_idle_connection(exc):
            raise
        with lock:
            results["reconnects"] += 1
        return session.post(f"{url}/v1/chat/completions", json={**BODY, "stream": stream}, timeout=60, stream=stream)


def client(url, stop_file, deadline, results, lock):
    session = requests.Session()
    stream = False
    while time.time() < deadline and not os.path.exists(stop_file):
        stream = not stream
        started = time.time()
        outcome = "ok"
        try:
            resp = _post(session, url, stream, results, lock)
            if resp.status_code != 200:
                outcome = f"http {resp.status_code}: {resp.text[:200]}"
            elif stream:
                lines = [ln for ln in resp.iter_lines(decode_unicode=True) if ln]
                if not lines or lines[-1] != "data: [DONE]":
                    outcome = f"stream without [DONE]: {lines[-1:] }"
            upstream = resp.headers.get("X-QVC-Upstream", "?")
        except requests.RequestException as exc:
            outcome, upstream = f"error: {exc}", "?"
        with lock:
            results["requests"] += 1
            results["upstreams"][upstream.split(",")[-1].strip()] += 1
            results["max_latency_s"] = max(results["max_latency_s"], time.time() - started)
            if outcome != "ok":
                results["failures"].append({"t": round(time.time(), 2), "stream": stream, "why": outcome})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=600)
    ap.add_argument("--no-resend", action="store_true", help="never send a request twice (like curl)")
    args = ap.parse_args()
    results = {"requests": 0, "reconnects": 0, "failures": [], "upstreams": collections.Counter(), "max_latency_s": 0.0,
               "no_resend": args.no_resend}
    lock = threading.Lock()
    started = time.time()
    threads = [threading.Thread(target=client, args=(args.url, args.stop_file, started + args.max_seconds, results, lock))
               for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results["seconds"] = round(time.time() - started, 1)
    results["failed"] = len(results["failures"])
    results["max_latency_s"] = round(results["max_latency_s"], 2)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
