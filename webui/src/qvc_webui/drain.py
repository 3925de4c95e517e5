"""Instance drain contract (shared by the product app and the sim test double).

The webui role bind-mounts ``<webui_state_dir>/<instance>`` read-only at ``/run/qvc-control``.
While a file ``drain`` exists there, every NEW request other than ``/healthz``, ``/livez`` and
``/metrics`` (``/v1/*``, the Gradio UI, anything else) is answered ``503`` with
``Retry-After: 1`` and the body ``{"error": {"message": "instance draining", "type":
"unavailable", "code": "draining"}}`` before any work starts, so nginx may pass it on to
another upstream (``proxy_next_upstream http_503 non_idempotent``).  Requests already running
finish.  ``/healthz`` answers 503 ``{"status": "draining"}``; ``/metrics`` has ``qvc_draining``.
Deleting the file resumes service.  The stat is cached for ``ttl`` seconds (<= 0.5).

Only this module depends on the file layout; it has no dependency beyond the standard library
so the sim (test tree) can use it unchanged.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Awaitable, Callable

DEFAULT_CONTROL_DIR = "/run/qvc-control"
CONTROL_DIR_ENV = "QVC_CONTROL_DIR"
DRAIN_FILE = "drain"
OPS_PATHS = frozenset({"/healthz", "/livez", "/metrics"})
DRAIN_BODY = json.dumps({"error": {"message": "instance draining", "type": "unavailable",
                                   "code": "draining"}}).encode()
HEALTH_DRAINING_BODY = json.dumps({"status": "draining"}).encode()


class DrainFlag:
    """``active`` is True while ``<control_dir>/drain`` exists; one ``stat`` per ``ttl`` seconds."""

    def __init__(self, control_dir: str | None = None, ttl: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= ttl <= 0.5:
            raise ValueError("drain flag cache ttl must be between 0 and 0.5 s")
        base = control_dir if control_dir is not None else os.environ.get(CONTROL_DIR_ENV, DEFAULT_CONTROL_DIR)
        self.path = os.path.join(base, DRAIN_FILE)
        self.ttl = ttl
        self._clock = clock
        self._checked = float("-inf")
        self._active = False

    @property
    def active(self) -> bool:
        now = self._clock()
        if now - self._checked >= self.ttl:
            self._active = os.path.exists(self.path)
            self._checked = now
        return self._active


Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def send_draining(send: Send) -> None:
    await send_json(send, 503, DRAIN_BODY, [(b"retry-after", b"1"), (b"cache-control", b"no-store")])


class DrainMiddleware:
    """Pure ASGI: refuse every new non-ops request with the contract's 503 while draining.

    Placed outermost, so a refused request never reaches the engine, the UI or the body reader.
    A websocket handshake is refused with close code 1013 ("try again later").
    """

    def __init__(self, app: Any, flag: DrainFlag) -> None:
        self.app, self.flag = app, flag

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in OPS_PATHS and self.flag.active:
            if scope["type"] == "http":
                await send_draining(send)
            else:
                await send({"type": "websocket.close", "code": 1013})
            return
        await self.app(scope, receive, send)
