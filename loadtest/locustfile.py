"""Locust load test of the QVC cluster's OpenAI-compatible API (through the load balancer).

    locust -f loadtest/locustfile.py --headless -u 10 -r 5 -t 30s --host http://LB \
        --csv out/locust --html out/locust.html [--qvc-video] [--qvc-max-tokens 32]

Request mix (weights): text only 4, one image 3, several images 2, video 1 (only with
--qvc-video). Images are small generated PNG data: URLs (the video an animated GIF, which the
WebUI samples like a clip). A request streams (SSE) with probability --qvc-stream-ratio.

Names in the statistics: ``text``, ``image``, ``images x3``, ``video``, each with a
``stream`` suffix when streamed. A streamed request's time is the whole stream (to
``data: [DONE]``); its time to first token is written to ``<csv prefix>_ttft.csv``. A
request fails on a non-200 status, a missing ``[DONE]``, an ``error`` event in the stream,
or a reply without text.
"""
from __future__ import annotations

import csv
import random
import time

from locust import HttpUser, between, events, task

from qvc_requests import build_body, check_stream  # loadtest/ (locust puts the locustfile's dir on sys.path)

CHAT = "/v1/chat/completions"
TTFT: list[tuple[str, float]] = []  # (name, seconds) of streamed requests


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--qvc-video", action="store_true", default=False, help="include video requests")
    parser.add_argument("--qvc-max-tokens", type=int, default=32, help="max_tokens per request")
    parser.add_argument("--qvc-stream-ratio", type=float, default=0.5, help="fraction of streamed requests")
    parser.add_argument("--qvc-images", type=int, default=3, help="images in a several-images request")
    parser.add_argument("--qvc-api-key", default="", help="bearer token, if the LB requires API keys")


class ChatUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.max_tokens = int(getattr(o, "qvc_max_tokens", 32))
        self.stream_ratio = float(getattr(o, "qvc_stream_ratio", 0.5))
        self.n_images = int(getattr(o, "qvc_images", 3))
        key = getattr(o, "qvc_api_key", "")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _chat(self, kind: str, label: str) -> None:
        stream = random.random() < self.stream_ratio
        name = label + (" stream" if stream else "")
        body = build_body(kind, stream, self.max_tokens, self.n_images)
        t0 = time.perf_counter()
        with self.client.post(CHAT, json=body, headers=self.headers, name=name, stream=stream,
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")
                return
            if not stream:
                try:
                    choice = resp.json()["choices"][0]
                    reply, finish = choice["message"]["content"], choice.get("finish_reason")
                except (ValueError, KeyError, IndexError, TypeError):
                    resp.failure("malformed reply")
                    return
                if not reply and finish != "stop":  # an immediate end-of-sequence is an answer
                    resp.failure("empty reply")
                return
            lines, first, size = [], None, 0
            try:
                for raw in resp.iter_lines():
                    if first is None and raw.startswith(b'data: {') and b'"content":"' in raw \
                            and b'"content":""' not in raw:
                        first = time.perf_counter()
                    size += len(raw) + 1
                    lines.append(raw.decode())
            except Exception as exc:  # connection dropped mid-stream
                resp.failure(f"stream broken: {type(exc).__name__}")
                return
            # the whole stream is the request's time (locust would stop at the headers)
            resp.request_meta["response_time"] = (time.perf_counter() - t0) * 1000
            resp.request_meta["response_length"] = size
            if first is not None:
                TTFT.append((name, first - t0))
            problem = check_stream(lines)
            if problem:
                resp.failure(problem)
            else:
                resp.success()

    @task(4)
    def text(self) -> None:
        self._chat("text", "text")

    @task(3)
    def image(self) -> None:
        self._chat("image", "image")

    @task(2)
    def images(self) -> None:
        self._chat("images", f"images x{self.n_images}")

    @task(1)
    def video(self) -> None:
        if getattr(self.environment.parsed_options, "qvc_video", False):
            self._chat("video", "video")
        else:  # keep the mix's proportions: without video this slot sends text
            self._chat("text", "text")


@events.quitting.add_listener
def _write_ttft(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    prefix = getattr(environment.parsed_options, "csv_prefix", None) if environment.parsed_options else None
    if not prefix:
        return
    with open(f"{prefix}_ttft.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Name", "TTFT seconds"])
        w.writerows((n, f"{t:.4f}") for n, t in TTFT)
