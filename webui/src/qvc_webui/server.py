"""One serving instance: vLLM's own OpenAI-compatible server, in process, behind a thin ASGI shell.

Shape (one process, one port):

* ``/v1/*`` (and every other vLLM route: ``/tokenize``, ``/version``...) is vLLM's FastAPI app,
  built with vLLM's ``build_app`` + ``init_app_state`` around an ``AsyncLLM`` engine client:
  the request validation, chat templates, tool calling (hermes), structured outputs,
  logprobs, streaming and errors are vLLM's, not ours.
* The shell owns what the fleet relies on:
  - ``/livez`` answers at once, also while the model loads: the engine is built in a worker
    thread (``AsyncLLM.from_vllm_config`` blocks while EngineCore loads the model);
  - ``/healthz``: 503 ``loading`` until the engine exists AND one warm-up chat completion was
    answered, then 200 with model / engine / device / instance / version; 503 ``draining``
    (drain contract), ``failed`` (load error) or ``dead`` (vLLM's engine died);
  - ``/metrics``: vLLM's Prometheus registry (``vllm:num_requests_running`` /
    ``vllm:num_requests_waiting``...) plus ``qvc_webui_*`` (in-flight, ready, info with the
    version label) and ``qvc_draining``;
  - the drain contract (``drain.py``), a request body cap (413), JSON access logs;
  - the browser UI at ``/`` (``ui.py``), a client of ``/v1``.
* Before the engine is ready a ``/v1`` request gets 503 ``loading`` with ``Retry-After`` (not
  started: nginx may try another instance).  Once ready, every answer is vLLM's: errors a
  request causes are 4xx there; an engine failure is 500 and ``/healthz`` says ``dead``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import types
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .config import Settings
from .drain import DrainFlag, DrainMiddleware, send_json
from .metrics import Metrics, route_of

log = logging.getLogger("qvc_webui")
access_log = logging.getLogger("qvc_webui.access")
OPS = ("/healthz", "/livez", "/metrics")


class Instance:
    """The ASGI application of one instance (see the module docstring)."""

    def __init__(self, settings: Settings, *, engine_factory: Any = None, ui: bool | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.drain = DrainFlag(settings.control_dir)
        self.state = "loading"
        self.detail = ""
        self.device = "?"
        self.engine_client: Any = None
        self.inner: Any = None  # vLLM's FastAPI app once built
        self.in_flight = 0
        self._engine_factory = engine_factory or start_vllm
        self._task: asyncio.Task | None = None
        self._stack = contextlib.AsyncExitStack()
        self.ui_enabled = settings.ui_enabled if ui is None else ui
        # the uvicorn.Server running this app (set by __main__): vLLM's engine-error handler sets
        # its should_exit when the engine died, so the process ends and Docker restarts it
        self.uvicorn_server: Any = None
        self._ui_page: bytes | None = None
        self.metrics.info.info({"model": settings.model_name, "engine": settings.engine,
                                "version": settings.version_label, "instance": settings.instance_id,
                                "package": __version__})
        self.app = DrainMiddleware(self._dispatch, self.drain)

    # ------------------------------------------------------------------ lifecycle
    async def startup(self) -> None:
        self._task = asyncio.create_task(self._start(), name="qvc-engine-start")

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._stack.aclose()

    async def _start(self) -> None:
        t0 = time.perf_counter()
        try:
            log.info("engine starting", extra={"model": self.settings.model, "engine": self.settings.engine})
            self.engine_client, self.inner, self.device = await self._engine_factory(self.settings, self._stack)
            if getattr(self.inner, "state", None) is not None:
                # vLLM's handlers read app.state.server (normally set by its serve_http)
                self.inner.state.server = self.uvicorn_server or types.SimpleNamespace(should_exit=False)
            if self.settings.warmup:
                await self._warmup()
            self.state = "ready"
            self.metrics.model_load.set(time.perf_counter() - t0)
            log.info("instance ready", extra={"load_s": round(time.perf_counter() - t0, 3), "device": self.device})
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # stay up; /healthz says failed
            self.state, self.detail = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("engine start failed")

    async def _warmup(self) -> None:
        import httpx

        transport = httpx.ASGITransport(app=self.inner)
        async with httpx.AsyncClient(transport=transport, base_url="http://warmup", timeout=600) as client:
            r = await client.post("/v1/chat/completions", json={
                "model": self.settings.model_name, "max_tokens": 1,
                "messages": [{"role": "user", "content": "warm-up"}]})
        if r.status_code != 200:
            raise RuntimeError(f"warm-up answered {r.status_code}: {r.text[:300]}")

    # ------------------------------------------------------------------ health
    def health(self) -> tuple[int, dict[str, Any]]:
        if self.drain.active:
            return 503, {"status": "draining"}
        if self.state == "ready" and self.engine_client is not None and getattr(self.engine_client, "errored", False):
            self.state, self.detail = "dead", "vLLM engine died (see log)"
        if self.state != "ready":
            body: dict[str, Any] = {"status": self.state}
            if self.detail:
                body["detail"] = self.detail
            return 503, body
        s = self.settings
        return 200, {"status": "ok", "model": s.model_name, "engine": s.engine, "device": self.device,
                     "instance": s.instance_id, "version": s.version_label}

    def metrics_text(self) -> bytes:
        self.metrics.draining.set(1 if self.drain.active else 0)
        self.metrics.ready.set(1 if self.health()[0] == 200 else 0)
        self.metrics.in_flight.set(self.in_flight)
        out = b""
        if self.inner is not None:
            try:
                from vllm.v1.metrics.prometheus import get_prometheus_registry

                registry = get_prometheus_registry()
                waiting = registry.get_sample_value("vllm:num_requests_waiting",
                                                    {"engine": "0", "model_name": self.settings.model_name})
                self.metrics.queue_depth.set(waiting or 0)
                out = generate_latest(registry) + generate_latest(self.metrics.registry)
            except ImportError:  # pragma: no cover - vllm missing
                pass
        return out or generate_latest(self.metrics.registry)

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if self.inner is not None:
                await self.inner(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        start = time.perf_counter()
        status = {"code": 0}

        stream = {"first": True, "sse": False}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                stream["sse"] = any(k == b"content-type" and v.startswith(b"text/event-stream")
                                    for k, v in message.get("headers", ()))
            elif message["type"] == "http.response.body" and stream["first"] and message.get("body"):
                stream["first"] = False
                if stream["sse"] and status["code"] == 200:
                    self.metrics.ttft.labels("api").observe(time.perf_counter() - start)
            await send(message)

        counted = False
        try:
            if path in OPS:
                await self._ops(path, send_wrapper)
                return
            if self.ui_enabled and path in ("/", "/index.html") and method in ("GET", "HEAD"):
                await self._ui(send_wrapper)
                return
            if self.state != "ready" or self.inner is None:
                code = 503 if self.state == "loading" else 503
                await send_json(send_wrapper, code, _error(
                    f"instance not ready ({self.state})", "unavailable", "not_ready"),
                    [(b"retry-after", b"5")])
                return
            # counted from here (before the upload is read) so a drain never misses an accepted request
            counted = path.startswith("/v1/") and method == "POST"
            if counted:
                self.in_flight += 1
            limit = self.settings.max_body_bytes
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await send_json(send_wrapper, 413, _error(f"request body larger than {limit} bytes",
                                                          "invalid_request_error", "body_too_large"))
                return
            # read the body here (vLLM parses whole bodies anyway): over the cap -> 413 before any work
            chunks: list[bytes] = []
            size, more = 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await send_json(send_wrapper, 413, _error(f"request body larger than {limit} bytes",
                                                              "invalid_request_error", "body_too_large"))
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            replay: list[dict[str, Any]] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def receive_replay() -> dict[str, Any]:
                return replay.pop() if replay else await receive()

            await self.inner(scope, receive_replay, send_wrapper)
        finally:
            if counted:
                self.in_flight -= 1
            code = status["code"] or 499
            elapsed = time.perf_counter() - start
            route = route_of(path, self.ui_enabled)
            self.metrics.requests.labels(route, method, str(code)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if path not in OPS:
                access_log.info("request", extra={
                    "method": method, "path": path, "status": code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0]})

    async def _ops(self, path: str, send: Any) -> None:
        if path == "/livez":
            await send_json(send, 200, b'{"status":"alive"}')
        elif path == "/healthz":
            code, body = self.health()
            await send_json(send, code, json.dumps(body).encode())
        else:
            body = self.metrics_text()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

    async def _ui(self, send: Any) -> None:
        if self._ui_page is None:
            from .ui import render_page

            self._ui_page = render_page(self.settings)
        page = self._ui_page
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(page)).encode()),
                                (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": page})


def _error(message: str, type_: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "code": code}}).encode()


def _request_errors_are_4xx() -> None:
    """Make errors a request causes inside vLLM's media decoding map to 400, not 500.

    vLLM answers 400 for ValueError/TypeError and 500 for other exceptions.  Pillow's
    ``DecompressionBombError`` (an image over ``Image.MAX_IMAGE_PIXELS`` x 2, e.g. a few-KB PNG
    of 20000 x 20000 pixels) derives from Exception only, so vLLM reported the client's bomb as
    an internal error.  Pillow raises it through its module global, so a subclass that also
    derives from ValueError keeps every ``except DecompressionBombError`` working and makes vLLM
    answer 400.  Found by tests/test_vllm_openai.py::test_hostile_bodies_are_4xx[bomb].
    """
    from PIL import Image

    if not issubclass(Image.DecompressionBombError, ValueError):
        Image.DecompressionBombError = type(  # type: ignore[misc]
            "DecompressionBombError", (Image.DecompressionBombError, ValueError), {})


def _prepare_vllm(settings: Settings) -> tuple[Any, Any, Any, str]:
    """Imports (seconds) and argument parsing: run in a worker thread, off the event loop."""
    _request_errors_are_4xx()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.usage.usage_lib import UsageContext
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    device = settings.resolved_device
    args = make_arg_parser(FlexibleArgumentParser(prog="qvc-webui")).parse_args(settings.vllm_args(device))
    validate_parsed_serve_args(args)
    engine_args = AsyncEngineArgs.from_cli_args(args)
    vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    return args, engine_args, vllm_config, device


async def start_vllm(settings: Settings, stack: contextlib.AsyncExitStack) -> tuple[Any, Any, str]:
    """Build vLLM's engine client and OpenAI app; blocking steps run in worker threads."""
    args, engine_args, vllm_config, device = await asyncio.to_thread(_prepare_vllm, settings)
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.app import build_app
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    engine = await asyncio.to_thread(
        AsyncLLM.from_vllm_config, vllm_config=vllm_config, usage_context=UsageContext.OPENAI_API_SERVER,
        enable_log_requests=engine_args.enable_log_requests, disable_log_stats=engine_args.disable_log_stats)
    stack.callback(engine.shutdown)
    await engine.reset_mm_cache()
    tasks = await engine.get_supported_tasks()
    app = build_app(args, tasks, engine.model_config)
    await init_app_state(engine, app.state, args, tasks)
    await stack.enter_async_context(app.router.lifespan_context(app))
    return engine, app, device
