"""The engine interface shared by the transformers, vLLM and sim back ends."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Literal

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from ..config import Settings


# ---------------------------------------------------------------- errors (mapped to HTTP by the API)
class ServiceError(Exception):
    status = 500
    type = "internal_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(ServiceError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"


class QueueFull(ServiceError):
    status, type, code = 429, "rate_limit_error", "queue_full"


class NotReady(ServiceError):
    status, type, code = 503, "service_unavailable", "model_not_ready"


class EngineDead(ServiceError):
    status, type, code = 503, "service_unavailable", "engine_dead"


# ---------------------------------------------------------------- request representation
@dataclass
class Part:
    kind: Literal["text", "image", "video"]
    text: str = ""
    image: "Image | None" = None
    frames: "list[Image]" = field(default_factory=list)  # video: sampled frames
    fps: float = 1.0  # video: frames per second of the sampled frames


@dataclass
class Message:
    role: str
    parts: list[Part]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if p.kind == "text")


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class GenerationRequest:
    messages: list[Message]
    params: SamplingParams
    request_id: str


@dataclass
class Delta:
    text: str
    tokens: int = 0


class Generation(abc.ABC):
    """One running generation: iterate for text deltas; usage is final after iteration."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    max_tokens: int = 0

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Delta]: ...

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop generating (client went away, stop string hit).  Idempotent."""


def resolve_max_tokens(prompt_tokens: int, requested: int | None, settings: "Settings") -> int:
    room = settings.max_context - prompt_tokens
    if room < 1:
        raise ContextLengthExceeded(
            f"prompt is {prompt_tokens} tokens; this model's context is {settings.max_context} tokens")
    if requested is None:
        return min(settings.default_max_tokens, room)
    if requested > room:
        raise ContextLengthExceeded(
            f"prompt ({prompt_tokens} tokens) + max_tokens ({requested}) exceeds the context "
            f"of {settings.max_context} tokens")
    return requested


class Engine(abc.ABC):
    name: str = "base"
    system_fingerprint: str | None = None

    def __init__(self, settings: "Settings") -> None:
        self.settings = settings
        self.device = settings.resolved_device
        self.dead_reason: str | None = None

    @property
    def model_name(self) -> str:
        return self.settings.model_name

    @property
    def default_concurrency(self) -> int:
        """Admission slots: an explicit `concurrency` setting, else what the engine batches itself."""
        if "concurrency" in self.settings.model_fields_set:
            return self.settings.concurrency
        return self.native_concurrency

    @property
    def native_concurrency(self) -> int:
        """Generations the engine runs at once when not configured (engines with batching override it)."""
        return self.settings.concurrency

    @property
    def alive(self) -> bool:
        return self.dead_reason is None

    def mark_dead(self, reason: str) -> None:
        self.dead_reason = reason

    @abc.abstractmethod
    async def load(self) -> None: ...

    @abc.abstractmethod
    async def generate(self, request: GenerationRequest) -> Generation:
        """Validate (raising BadRequest / ContextLengthExceeded) and start a generation."""

    async def warmup(self) -> None:
        gen = await self.generate(GenerationRequest(
            messages=[Message("user", [Part("text", text="Hello")])],
            params=SamplingParams(max_tokens=2, temperature=0.0), request_id="warmup"))
        async for _ in gen:
            pass

    async def shutdown(self) -> None:
        return None


class StopMatcher:
    """Cut a text stream at the first stop string, holding back possible partial matches."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buf = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.buf += text
        hits = [i for i in (self.buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buf = self.buf[: min(hits)], ""
            return out, True
        cut = len(self.buf) - self.hold
        if cut <= 0:
            return "", False
        out, self.buf = self.buf[:cut], self.buf[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out
