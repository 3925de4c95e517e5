"""``sim``: a timing emulator of a GPU serving engine (no model, no GPU).

It reproduces what load balancing and capacity planning care about: model load time,
time to first token (``sim_ttft_ms``), per-output-token latency (``sim_tpot_ms``) and a
batch capacity (``sim_batch_capacity`` sequences decode at once; more wait in the engine).
Token timing follows an absolute schedule so event-loop jitter does not accumulate.
Responses are marked as simulated: the model name gets a ``+sim`` suffix, the
``system_fingerprint`` is ``sim`` and the text starts with ``[simulated]``.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from typing import AsyncIterator

from .base import Delta, Engine, Generation, GenerationRequest, resolve_max_tokens

_WORDS = ("[simulated] this reply was produced by the qvc-webui sim engine, a timing emulator "
          "of a GPU serving engine; no model ran . ").split(" ")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


class SimGeneration(Generation):
    def __init__(self, engine: "SimEngine", prompt_tokens: int, n_tokens: int, finish: str) -> None:
        self.engine = engine
        self.prompt_tokens = prompt_tokens
        self.max_tokens = n_tokens
        self._n = n_tokens
        self._finish = finish
        self._cancelled = False

    async def __aiter__(self) -> AsyncIterator[Delta]:  # type: ignore[override]
        s = self.engine.settings
        async with self.engine.batch:  # batch capacity: beyond it sequences wait
            start = time.monotonic()
            ttft, tpot = s.sim_ttft_ms / 1000.0, s.sim_tpot_ms / 1000.0
            for i in range(self._n):
                if self._cancelled:
                    self.finish_reason = "cancelled"
                    return
                if not self.engine.alive:
                    raise RuntimeError(f"sim engine died: {self.engine.dead_reason}")
                delay = start + ttft + i * tpot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif i % 64 == 63:
                    await asyncio.sleep(0)  # zero-latency configs must still yield
                self.completion_tokens += 1
                yield Delta(_WORDS[i % len(_WORDS)] + " ", 1)
            self.finish_reason = self._finish

    async def cancel(self) -> None:
        self._cancelled = True


class SimEngine(Engine):
    name = "sim"
    system_fingerprint = "sim"

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.device = "sim"
        self.batch = asyncio.Semaphore(settings.sim_batch_capacity)

    @property
    def model_name(self) -> str:
        return self.settings.model_name + "+sim"

    @property
    def native_concurrency(self) -> int:
        return self.settings.sim_batch_capacity

    async def load(self) -> None:
        await asyncio.sleep(self.settings.sim_load_s)

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        n = 0
        for m in request.messages:
            n += 4  # <|im_start|>role\n ... <|im_end|>\n
            for p in m.parts:
                if p.kind == "text":
                    n += len(_TOKEN_RE.findall(p.text))
                elif p.kind == "image" and p.image is not None:
                    n += 2 + max(1, math.ceil(p.image.width * p.image.height / (32 * 32)))
                elif p.kind == "video":
                    n += sum(2 + max(1, math.ceil(f.width * f.height / (32 * 32))) for f in p.frames) // 2
        return n + 3

    async def generate(self, request: GenerationRequest) -> Generation:
        if not self.alive:
            raise RuntimeError(self.dead_reason)
        prompt = self.count_prompt_tokens(request)
        requested = request.params.max_tokens
        max_tokens = resolve_max_tokens(prompt, requested, self.settings)
        if requested is None:
            n = min(self.settings.sim_output_tokens, max_tokens)
            finish = "stop" if n == self.settings.sim_output_tokens else "length"
        else:
            n, finish = max_tokens, "length"
        return SimGeneration(self, prompt, n, finish)
