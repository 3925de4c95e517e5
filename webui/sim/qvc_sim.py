"""``qvc_sim``: GPU timing emulator, a TEST DOUBLE of one qvc-webui instance (no model, no GPU).

Lives in the test/benchmark tree (webui/sim), not in the product package: the LB, rollout and
monitoring tests and benchmarks need many cheap instances on 2 cores.  It serves the subset of
the instance API those use, with the same names as the product (vLLM + qvc shell):

* ``POST /v1/chat/completions`` (stream / non-stream, ``stream_options.include_usage``,
  ``max_tokens`` / ``max_completion_tokens``), ``GET /v1/models``; errors in OpenAI JSON (4xx);
* the product's chat page at ``/``; ``/healthz`` (503 ``loading`` for ``load_s``, then 200), ``/livez``, ``/metrics`` with
  ``vllm:num_requests_running`` / ``vllm:num_requests_waiting``, ``qvc_webui_requests_in_flight``,
  ``qvc_webui_ready``, ``qvc_draining``, ``qvc_webui_info``;
* the drain contract (``qvc_webui.drain``), exactly as the product.

Timing: time to first token ``ttft_ms``, per output token ``tpot_ms``, ``batch_capacity``
sequences decode at once (more wait: ``num_requests_waiting``); an absolute token schedule so
event-loop jitter does not accumulate.  It serves the model under the same id as vLLM (the
served model name; another ``model`` gets vLLM's 404), so clients of a fleet that mixes sim and
vLLM instances see one model. Replies are marked: ``system_fingerprint`` ``sim``, ``owned_by``
``qvc-sim``, text ``[simulated] ...``.

Run: ``QVC_WEBUI_ENGINE=sim python -m qvc_webui`` with webui/sim on PYTHONPATH (the test image
built by ``webui/build-image.sh --with-sim`` has it), knobs under config key ``sim``.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Info, generate_latest

from qvc_webui import __version__
from qvc_webui.drain import DrainFlag, DrainMiddleware, send_json

_WORDS = ("[simulated] this reply was produced by the qvc sim, a timing emulator of a GPU serving "
          "engine; no model ran .").split(" ")
DEFAULTS = {"ttft_ms": 150.0, "tpot_ms": 15.0, "batch_capacity": 256, "output_tokens": 64, "load_s": 0.0}


def _err(status: int, message: str, code: str, type_: str = "invalid_request_error") -> tuple[int, bytes]:
    return status, json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


class Sim:
    def __init__(self, settings: Any) -> None:
        unknown = set(settings.sim) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown sim keys: {sorted(unknown)}")
        self.cfg = {**DEFAULTS, **settings.sim}
        self.settings = settings
        self.model = settings.model_name
        self.batch = asyncio.Semaphore(int(self.cfg["batch_capacity"]))
        self.running = self.waiting = self.in_flight = 0
        self.ready = False
        self.drain = DrainFlag(settings.control_dir)
        r = self.registry = CollectorRegistry()
        labels = {"engine": "0", "model_name": self.model}
        self.g_running = Gauge("vllm:num_requests_running", "Requests in the model batch (sim)",
                               list(labels), registry=r).labels(**labels)
        self.g_waiting = Gauge("vllm:num_requests_waiting", "Requests waiting for a batch slot (sim)",
                               list(labels), registry=r).labels(**labels)
        self.g_in_flight = Gauge("qvc_webui_requests_in_flight", "HTTP requests to /v1 being answered", registry=r)
        self.g_queue = Gauge("qvc_webui_queue_depth", "Requests waiting for a batch slot (sim)", registry=r)
        self.g_ready = Gauge("qvc_webui_ready", "1 when /healthz answers 200", registry=r)
        self.g_draining = Gauge("qvc_draining", "1 while the instance drains", registry=r)
        Info("qvc_webui", "Build and model information", registry=r).info({
            "model": self.model, "engine": "sim", "version": settings.version_label,
            "instance": settings.instance_id, "package": __version__})
        self.app = DrainMiddleware(self._http, self.drain)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    asyncio.get_running_loop().call_later(float(self.cfg["load_s"]), self._set_ready)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)

    def _set_ready(self) -> None:
        self.ready = True

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.drain.active:
            return 503, {"status": "draining"}
        if not self.ready:
            return 503, {"status": "loading"}
        s = self.settings
        return 200, {"status": "ok", "model": self.model, "engine": "sim", "device": "sim",
                     "instance": s.instance_id, "version": s.version_label}

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/livez":
            return await send_json(send, 200, b'{"status":"alive"}')
        if path == "/healthz":
            code, body = self.health()
            return await send_json(send, code, json.dumps(body).encode())
        if path == "/metrics":
            self.g_running.set(self.running)
            self.g_waiting.set(self.waiting)
            self.g_in_flight.set(self.in_flight)
            self.g_queue.set(self.waiting)
            self.g_ready.set(1 if self.health()[0] == 200 else 0)
            self.g_draining.set(1 if self.drain.active else 0)
            body = generate_latest(self.registry)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
            return await send({"type": "http.response.body", "body": body})
        if path in ("/", "/index.html") and method in ("GET", "HEAD") and self.settings.ui_enabled:
            # the product's chat page (a client of /v1), so LB tests of the UI route see what users get
            from qvc_webui.ui import render_page

            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})
            return await send({"type": "http.response.body", "body": render_page(self.settings)})
        if not self.ready:
            return await send_json(send, 503, _err(503, "instance not ready (loading)", "not_ready", "unavailable")[1],
                                   [(b"retry-after", b"5")])
        if path == "/v1/models" and method == "GET":
            return await send_json(send, 200, json.dumps({"object": "list", "data": [
                {"id": self.model, "object": "model", "created": 0, "owned_by": "qvc-sim"}]}).encode())
        if path != "/v1/chat/completions":
            return await send_json(send, *_err(404, f"no route {path}", "not_found"))
        if method != "POST":
            return await send_json(send, *_err(405, "use POST", "method_not_allowed"))
        self.in_flight += 1
        try:
            await self._chat(receive, send)
        finally:
            self.in_flight -= 1

    async def _chat(self, receive: Any, send: Any) -> None:
        raw = b""
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            raw += msg.get("body", b"")
            if len(raw) > self.settings.max_body_bytes:
                return await send_json(send, *_err(413, "request body too large", "body_too_large"))
            if not msg.get("more_body"):
                break
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
            messages = body["messages"]
            assert isinstance(messages, list) and messages
        except Exception:
            return await send_json(send, *_err(400, "body must be JSON with a non-empty 'messages' list",
                                               "invalid_request"))
        if body.get("model") not in (None, self.model):
            return await send_json(send, *_err(404, f"The model `{body['model']}` does not exist.",
                                               "model_not_found", "NotFoundError"))
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            return await send_json(send, *_err(400, "max_tokens must be a positive integer", "invalid_request"))
        n = int(max_tokens or self.cfg["output_tokens"])
        finish = "length" if max_tokens else "stop"
        prompt = sum(len(json.dumps(m.get("content", ""))) // 4 + 4 for m in messages if isinstance(m, dict))
        stream = bool(body.get("stream"))
        usage_in_stream = bool((body.get("stream_options") or {}).get("include_usage"))
        rid, created = "chatcmpl-" + uuid.uuid4().hex, int(time.time())
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch())
        self.waiting += 1
        try:
            try:
                await self.batch.acquire()
            finally:
                self.waiting -= 1
            self.running += 1
            try:
                if stream:
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
                text = []
                start = time.monotonic()
                ttft, tpot = self.cfg["ttft_ms"] / 1000, self.cfg["tpot_ms"] / 1000
                for i in range(n):
                    if disconnected.is_set():
                        return
                    delay = start + ttft + i * tpot - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif i % 64 == 63:
                        await asyncio.sleep(0)
                    word = _WORDS[i % len(_WORDS)] + " "
                    text.append(word)
                    if stream:
                        await self._sse(send, rid, created, {"content": word} if i else
                                        {"role": "assistant", "content": word}, None)
                usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
                if stream:
                    await self._sse(send, rid, created, {}, finish)
                    if usage_in_stream:
                        await self._raw(send, {"id": rid, "object": "chat.completion.chunk", "created": created,
                                               "model": self.model, "choices": [], "usage": usage})
                    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
                else:
                    await send_json(send, 200, json.dumps({
                        "id": rid, "object": "chat.completion", "created": created, "model": self.model,
                        "system_fingerprint": "sim",
                        "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                                     "message": {"role": "assistant", "content": "".join(text)}}],
                        "usage": usage}).encode())
            finally:
                self.running -= 1
                self.batch.release()
        except OSError:  # client went away mid-stream
            return
        finally:
            watcher.cancel()

    async def _sse(self, send: Any, rid: str, created: int, delta: dict[str, Any], finish: str | None) -> None:
        await self._raw(send, {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.model,
                               "system_fingerprint": "sim",
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    @staticmethod
    async def _raw(send: Any, obj: dict[str, Any]) -> None:
        await send({"type": "http.response.body", "body": b"data: " + json.dumps(obj).encode() + b"\n\n",
                    "more_body": True})


def create_sim_app(settings: Any) -> Sim:
    return Sim(settings)
