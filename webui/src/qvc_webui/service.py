"""Admission control and the life cycle of one generation, shared by the API and the UI.

``ChatService.open`` admits a request (bounded concurrency + bounded queue), starts the
engine generation and returns a ``Session``.  ``Session.close`` is idempotent and is
called from every exit path (normal end, error, client disconnect, cancellation), which is
what keeps ``qvc_webui_requests_in_flight`` exact.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator

from .engines.base import (Delta, Engine, EngineDead, Generation, GenerationRequest, NotReady, QueueFull,
                           ServiceError, StopMatcher)
from .metrics import Metrics

log = logging.getLogger("qvc_webui.service")


class Admission:
    def __init__(self, slots: int, queue_size: int, queue_timeout_s: float, metrics: Metrics) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.queue_timeout_s = queue_timeout_s
        self._sem = asyncio.Semaphore(slots)
        self.waiting = 0
        self.running = 0
        self._metrics = metrics

    async def acquire(self) -> None:
        if self._sem.locked() or self.waiting:
            if self.waiting >= self.queue_size:
                raise QueueFull(f"server busy: {self.running} running, {self.waiting} queued "
                                f"(queue_size={self.queue_size}); retry later")
            self.waiting += 1
            self._metrics.queue_depth.set(self.waiting)
            try:
                await asyncio.wait_for(self._sem.acquire(), self.queue_timeout_s)
            except asyncio.TimeoutError:
                raise QueueFull(f"waited {self.queue_timeout_s:.0f}s for a generation slot") from None
            finally:
                self.waiting -= 1
                self._metrics.queue_depth.set(self.waiting)
        else:
            await self._sem.acquire()
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._sem.release()

    def retry_after(self) -> int:
        return max(1, min(60, 1 + self.waiting // max(1, self.slots)))


class Session:
    """One admitted generation. Iterate for text; then read usage/finish_reason."""

    def __init__(self, service: "ChatService", source: str, started: float) -> None:
        self.service = service
        self.source = source
        self.started = started
        self.generation: Generation | None = None
        self.stop = StopMatcher([])
        self.first_token_at: float | None = None
        self.engine_time = 0.0
        self.finish_reason: str | None = None
        self.error: str | None = None
        self._iter: AsyncIterator[Delta] | None = None
        self._slot = False
        self._closed = False

    @property
    def prompt_tokens(self) -> int:
        return self.generation.prompt_tokens if self.generation else 0

    @property
    def completion_tokens(self) -> int:
        return self.generation.completion_tokens if self.generation else 0

    async def __aiter__(self) -> AsyncIterator[str]:  # type: ignore[override]
        assert self.generation is not None
        self._iter = self.generation.__aiter__()
        metrics = self.service.metrics
        while True:
            t0 = time.perf_counter()
            try:
                delta = await self._iter.__anext__()
            except StopAsyncIteration:
                self.engine_time += time.perf_counter() - t0
                break
            except ServiceError:
                raise
            except Exception as exc:
                self.engine_time += time.perf_counter() - t0
                self.service.engine_failed(exc)
                raise EngineDead(f"generation failed: {type(exc).__name__}: {exc}") from exc
            self.engine_time += time.perf_counter() - t0
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
                metrics.ttft.labels(self.source).observe(self.first_token_at - self.started)
            text, stopped = self.stop.feed(delta.text)
            if text:
                yield text
            if stopped:
                self.finish_reason = "stop"
                await self.generation.cancel()
                return
        tail = self.stop.flush()
        if tail:
            yield tail
        self.finish_reason = self.generation.finish_reason or "stop"

    async def close(self, error: str | None = None) -> None:
        """Release everything exactly once (safe to call from any exit path)."""
        if self._closed:
            return
        self._closed = True
        svc = self.service
        try:
            if self.generation is not None and self.finish_reason is None:
                await self.generation.cancel()
            if self._iter is not None and hasattr(self._iter, "aclose"):
                try:
                    await self._iter.aclose()  # type: ignore[attr-defined]
                except Exception:  # pragma: no cover
                    pass
        finally:
            if self._slot:
                svc.admission.release()
            svc.metrics.in_flight.dec()
            end = time.perf_counter()
            reason = self.finish_reason or ("cancelled" if error in (None, "client_disconnected") else "error")
            svc.metrics.generations.labels(reason).inc()
            svc.metrics.prompt_tokens.inc(self.prompt_tokens)
            svc.metrics.generated_tokens.inc(self.completion_tokens)
            overhead = max(0.0, end - self.started - self.engine_time)
            svc.metrics.overhead.labels(self.source).observe(overhead)
            log.info("generation", extra={
                "source": self.source, "finish_reason": reason, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "ttft_ms": round((self.first_token_at - self.started) * 1000, 3) if self.first_token_at else None,
                "duration_ms": round((end - self.started) * 1000, 3),
                "overhead_ms": round(overhead * 1000, 3), "error": error})


class ChatService:
    def __init__(self, engine: Engine, metrics: Metrics, queue_size: int, queue_timeout_s: float) -> None:
        self.engine = engine
        self.metrics = metrics
        self.admission = Admission(engine.default_concurrency, queue_size, queue_timeout_s, metrics)
        self.ready = False
        self.load_error: str | None = None

    def engine_failed(self, exc: BaseException) -> None:
        """A generation raised something that is not the client's fault: check the engine."""
        log.error("engine error", extra={"error": f"{type(exc).__name__}: {exc}"})
        if self.engine.alive and _looks_fatal(exc):
            self.engine.mark_dead(f"{type(exc).__name__}: {exc}")

    def check_ready(self) -> None:
        if not self.engine.alive:
            raise EngineDead(f"engine is dead: {self.engine.dead_reason}")
        if not self.ready:
            raise NotReady("model is still loading" if not self.load_error else f"model failed to load: "
                           f"{self.load_error}")

    async def open(self, request: GenerationRequest, source: str, started: float | None = None,
                   stop: list[str] | None = None) -> Session:
        self.check_ready()
        sess = Session(self, source, started or time.perf_counter())
        self.metrics.in_flight.inc()
        try:
            try:
                await self.admission.acquire()
            except QueueFull:
                self.metrics.rejected.labels("queue_full").inc()
                raise
            sess._slot = True
            try:
                sess.generation = await self.engine.generate(request)
            except ServiceError:
                raise
            except Exception as exc:
                self.engine_failed(exc)
                raise EngineDead(f"engine failed to start generation: {type(exc).__name__}: {exc}") from exc
            sess.stop = StopMatcher(stop or [])
            return sess
        except BaseException as exc:
            await sess.close(error=getattr(exc, "code", type(exc).__name__))
            raise


def _looks_fatal(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(s in text for s in ("CUDA error", "device-side assert", "NCCL", "engine died", "EngineDead",
                                   "EngineGenerateError", "AsyncEngineDeadError"))
