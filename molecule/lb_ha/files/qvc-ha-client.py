#!/usr/bin/env python3
"""Failover client (molecule lb_ha test): POST a tiny chat completion to URL every INTERVAL
seconds for DURATION seconds (one new connection each) and print one JSON summary: every
request's wall-clock time, outcome and the LB address it went through."""
import json
import sys
import time
import urllib.request

url, duration, interval, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "ping"}]}).encode()
results = []
start = time.time()
next_at = start
while time.time() - start < duration:
    t0 = time.time()
    try:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            via = json.loads(resp.read()).get("via", "?")
        results.append({"t": t0, "ok": True, "via": via, "dt": round(time.time() - t0, 3)})
    except Exception as exc:  # noqa: BLE001 - every failure counts
        results.append({"t": t0, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:160], "dt": round(time.time() - t0, 3)})
    next_at = max(next_at + interval, time.time())  # no catch-up burst after a slow request
    time.sleep(max(0.0, next_at - time.time()))
print(json.dumps({"start": start, "end": time.time(), "results": results}))
