"""Pure helpers shared by the benchmarks and the load-test summary (no I/O, unit-tested).

* ``pct`` / ``summarize``: percentiles with linear interpolation (numpy's default method).
* ``poisson_trace``: an open-loop arrival trace (Poisson arrivals, fixed seed) with a
  heterogeneous output-length mix and a user id per request (for cookie affinity).
* ``simulate``: a discrete-event simulation of a cluster of batch-slot servers fed by an
  ideal dispatcher (join-shortest-queue, round robin, or a given assignment) on a trace.
"""
from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence


def pct(xs: Iterable[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between closest ranks."""
    s = sorted(xs)
    if not s:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be in 0..100, got {p}")
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(xs: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99 and max of a sample (NaN for an empty one)."""
    n = len(xs)
    return {"n": n, "mean": (sum(xs) / n) if n else math.nan, "p50": pct(xs, 50), "p95": pct(xs, 95),
            "p99": pct(xs, 99), "max": max(xs) if n else math.nan}


# ---------------------------------------------------------------- arrival trace
@dataclass(frozen=True)
class Arrival:
    t: float          # seconds after the start
    max_tokens: int   # output length of this request
    user: int         # session / user id (cookie affinity key)


# Output-length mix of VL chat traffic: short answers (captions, yes/no, OCR snippets),
# medium descriptions, and long ones. (tokens, probability)
DEFAULT_LENGTH_MIX: tuple[tuple[int, float], ...] = ((24, 0.45), (96, 0.35), (256, 0.20))


def mean_length(mix: Sequence[tuple[int, float]] = DEFAULT_LENGTH_MIX) -> float:
    total = sum(w for _, w in mix)
    return sum(n * w for n, w in mix) / total


def poisson_trace(rate: float, duration: float, seed: int,
                  mix: Sequence[tuple[int, float]] = DEFAULT_LENGTH_MIX, users: int = 24) -> list[Arrival]:
    """Open-loop Poisson arrivals at ``rate``/s for ``duration`` s; lengths drawn from ``mix``."""
    if rate <= 0 or duration <= 0:
        return []
    rng = random.Random(seed)
    lengths, weights = [n for n, _ in mix], [w for _, w in mix]
    out, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return out
        out.append(Arrival(t, rng.choices(lengths, weights)[0], rng.randrange(users)))


# ---------------------------------------------------------------- dispatcher simulation
def simulate(arrivals: Sequence[float], services: Sequence[float], servers: int, slots: int,
             policy: str = "jsq", assign: Sequence[int] | None = None) -> list[float]:
    """Latency (wait + service) of each request on ``servers`` servers with ``slots``
    parallel slots each and a FIFO queue per server (the sim engine's batch semaphore).

    policy ``jsq``: join the server with the fewest requests in the system (running +
    queued) at arrival time, ties to the lowest index; ``rr``: round robin; ``assign``:
    a given server per request (e.g. the hash affinity's choice). Completions at the same
    instant as an arrival happen first.
    """
    if len(arrivals) != len(services):
        raise ValueError("arrivals and services differ in length")
    if servers < 1 or slots < 1:
        raise ValueError("need at least one server and one slot")
    order = sorted(range(len(arrivals)), key=lambda i: arrivals[i])
    lat = [math.nan] * len(arrivals)
    in_system = [0] * servers
    running = [0] * servers
    queues: list[deque[int]] = [deque() for _ in range(servers)]
    done: list[tuple[float, int, int]] = []  # (time, request, server)

    def start(i: int, s: int, now: float) -> None:
        running[s] += 1
        end = now + services[i]
        lat[i] = end - arrivals[i]
        heapq.heappush(done, (end, i, s))

    def complete_until(t: float) -> None:
        while done and done[0][0] <= t:
            now, _, s = heapq.heappop(done)
            running[s] -= 1
            in_system[s] -= 1
            if queues[s]:
                start(queues[s].popleft(), s, now)

    for k, i in enumerate(order):
        complete_until(arrivals[i])
        if assign is not None:
            s = assign[i]
        elif policy == "jsq":
            s = min(range(servers), key=lambda j: (in_system[j], j))
        elif policy == "rr":
            s = k % servers
        else:
            raise ValueError(f"unknown policy {policy!r}")
        in_system[s] += 1
        if running[s] < slots:
            start(i, s, arrivals[i])
        else:
            queues[s].append(i)
    complete_until(math.inf)
    return lat
