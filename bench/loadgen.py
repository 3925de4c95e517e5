"""Async load generator (aiohttp): open-loop replay of an arrival trace and closed loops.

Each request is timed on the client: start (just before sending), first body byte, end, and
for streams the arrival time of every socket read that carried data.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import aiohttp

from .stats import Arrival

CHAT = "/v1/chat/completions"


@dataclass
class Result:
    ok: bool
    status: int
    start: float
    first_byte: float = 0.0
    end: float = 0.0
    chunks: list[float] = field(default_factory=list)  # arrival times of data reads (streams)
    upstream: str = ""
    error: str = ""
    tag: object = None

    @property
    def latency(self) -> float:
        return self.end - self.start

    @property
    def ttfb(self) -> float:
        return self.first_byte - self.start


def chat_body(max_tokens: int, stream: bool = False, text: str = "Describe the picture.") -> dict:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "stream": stream}


def affinity_cookie(user: int) -> str:
    """A well-formed LB affinity cookie value (32 hex digits) per user."""
    return hashlib.md5(f"user-{user}".encode()).hexdigest()


def session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False),
                                 cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=600))


async def request(s: aiohttp.ClientSession, url: str, body: dict, headers: dict | None = None,
                  tag: object = None) -> Result:
    r = Result(False, 0, time.perf_counter(), tag=tag)
    try:
        async with s.post(url + CHAT, json=body, headers=headers) as resp:
            r.status = resp.status
            r.upstream = resp.headers.get("X-QVC-Upstream", "")
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                if not r.first_byte:
                    r.first_byte = now
                if body.get("stream"):
                    r.chunks.append(now)
            r.end = time.perf_counter()
            r.ok = resp.status == 200
            if not r.ok:
                r.error = f"HTTP {resp.status}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        r.end = time.perf_counter()
        r.error = f"{type(exc).__name__}: {exc}"
    if not r.first_byte:
        r.first_byte = r.end
    return r


async def open_loop(url: str, trace: Sequence[Arrival], affinity: bool = False, stream: bool = False) -> list[Result]:
    """Send each request of ``trace`` at its time (independently of responses: open loop)."""
    async with session() as s:
        t0 = time.perf_counter() + 0.05
        tasks = []
        for a in trace:
            delay = t0 + a.t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            headers = {"Cookie": f"qvc_affinity={affinity_cookie(a.user)}"} if affinity else None
            tasks.append(asyncio.create_task(request(s, url, chat_body(a.max_tokens, stream), headers, tag=a)))
        return list(await asyncio.gather(*tasks))


async def closed_loop(url: str, concurrency: int, duration: float,
                      body: Callable[[int], dict]) -> tuple[list[Result], float, float]:
    """``concurrency`` clients each sending back to back for ``duration`` s.
    Returns (results, t_start, t_stop) - requests still running at t_stop are awaited."""
    async with session() as s:
        t0 = time.perf_counter()
        stop = t0 + duration
        results: list[Result] = []

        async def client(c: int) -> None:
            k = 0
            while time.perf_counter() < stop:
                results.append(await request(s, url, body(c * 100_000 + k)))
                k += 1

        await asyncio.gather(*(client(c) for c in range(concurrency)))
        return results, t0, stop
