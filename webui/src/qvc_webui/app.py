"""Application factory: FastAPI app, background model load, middleware, Gradio mount."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .api import build_router, error_response
from .config import Settings
from .drain import DrainFlag, DrainMiddleware
from .engines import Engine, create_engine
from .metrics import Metrics
from .service import ChatService

log = logging.getLogger("qvc_webui")
access_log = logging.getLogger("qvc_webui.access")

API_ROUTES = {"/v1/chat/completions", "/v1/models", "/healthz", "/livez", "/metrics", "/openapi.json",
              "/docs", "/redoc"}


class BodyTooLarge(Exception):
    pass


class ObservabilityMiddleware:
    """Pure ASGI (streaming-safe): body size limit, request metrics, JSON access log."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics, ui: bool) -> None:
        self.app, self.settings, self.metrics, self.ui = app, settings, metrics, ui

    def _route(self, path: str) -> str:
        if path in API_ROUTES:
            return path
        if path.startswith("/v1/"):
            return "/v1/other"
        return "ui" if self.ui else "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        scope["qvc.start"] = start
        route = self._route(scope["path"])
        method = scope["method"]
        status = {"code": 0}
        limit = self.settings.max_body_bytes
        quiet = route in ("/metrics", "/healthz", "/livez")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        async def respond(code: int, msg: str, type_: str, err: str) -> None:
            resp = error_response(code, msg, type_, err)
            await resp(scope, receive, send_wrapper)

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await respond(413, f"request body larger than {limit} bytes", "invalid_request_error",
                              "body_too_large")
                return
            seen = {"n": 0}

            async def receive_wrapper() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    seen["n"] += len(message.get("body", b""))
                    if seen["n"] > limit:
                        raise BodyTooLarge()
                return message

            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if not status["code"]:
                await respond(413, f"request body larger than {limit} bytes", "invalid_request_error",
                              "body_too_large")
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            if not status["code"]:
                await respond(500, "internal server error", "internal_error", "internal_error")
            else:
                raise
        finally:
            elapsed = time.perf_counter() - start
            code = status["code"] or 499
            self.metrics.requests.labels(route, method, str(code)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            if not quiet or code >= 400:
                access_log.info("request", extra={
                    "method": method, "path": scope["path"], "route": route, "status": code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0]})


async def _load(app: FastAPI) -> None:
    st = app.state
    svc: ChatService = st.service
    t0 = time.perf_counter()
    try:
        log.info("loading model", extra={"model": st.settings.model, "engine": svc.engine.name})
        await svc.engine.load()
        st.metrics.model_load.set(time.perf_counter() - t0)
        if st.settings.warmup:
            await svc.engine.warmup()
        svc.ready = True
        st.metrics.ready.set(1)
        if st.freeze_gc:
            # everything allocated so far (imports, model, processor) lives for the whole process:
            # keep it out of the cyclic collector, whose full passes over it took 60-80 ms per
            # pause under load (each pause stalls every stream on this instance)
            gc.freeze()
        log.info("model ready", extra={"load_s": round(time.perf_counter() - t0, 3), "device": svc.engine.device})
    except Exception as exc:  # stay up and report 503 "failed" on /healthz
        svc.load_error = f"{type(exc).__name__}: {exc}"
        log.exception("model load failed")


def create_app(settings: Settings, engine: Engine | None = None, *, mount_ui: bool | None = None,
               freeze_gc: bool = False) -> FastAPI:
    """``freeze_gc``: after the model is ready, move every object allocated so far out of the
    cyclic garbage collector (set by the server entry point; tests leave it off)."""
    metrics = Metrics()
    engine = engine or create_engine(settings)
    service = ChatService(engine, metrics, settings.queue_size, settings.queue_timeout_s)
    metrics.info.info({"model": engine.model_name, "engine": engine.name, "version": settings.version_label,
                       "instance": settings.instance_id, "device": str(engine.device), "package": __version__})
    ui = settings.ui_enabled if mount_ui is None else mount_ui

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(app))
        app.state.load_task = task
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            await engine.shutdown()

    app = FastAPI(title="qvc-webui", version=settings.version_label, lifespan=lifespan,
                  description="OpenAI-compatible chat completions for Qwen3-VL (text, images, video) "
                              f"served by engine '{engine.name}'.")
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = service
    app.state.created = int(time.time())
    app.state.freeze_gc = freeze_gc
    app.state.drain = drain = DrainFlag(settings.control_dir)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        errs = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errs):
            return error_response(400, "request body is not valid JSON", "invalid_request_error", "invalid_json")
        parts = []
        for e in errs[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {e.get('msg')}")
        return error_response(400, "; ".join(parts), "invalid_request_error", "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", code,
                              headers=getattr(exc, "headers", None))

    app.include_router(build_router())
    app.add_middleware(ObservabilityMiddleware, settings=settings, metrics=metrics, ui=ui)
    if ui:
        from .ui import mount_ui as _mount

        app = _mount(app, service, settings)
    # outermost: a draining instance refuses new work before the body is read or the engine is touched
    app.add_middleware(DrainMiddleware, flag=drain)
    return app
