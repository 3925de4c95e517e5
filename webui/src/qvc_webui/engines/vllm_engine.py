"""``vllm``: continuous batching with vLLM's async engine (GPU only).

vLLM is imported lazily inside :meth:`VllmEngine.load`, so this module imports (and the
request mapping is unit-tested) on machines without vLLM.  The prompt is rendered with
the checkpoint's chat template (Hugging Face processor) and images / video frames go in
``multi_modal_data``; sampling parameters map 1:1.  vLLM's own scheduler does the
batching, so the service's ``concurrency`` defaults to ``vllm_max_num_seqs``.
"""
from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from .base import BadRequest, ContextLengthExceeded, Delta, Engine, Generation, GenerationRequest, \
    SamplingParams, resolve_max_tokens
from .transformers_engine import build_chat

log = logging.getLogger("qvc_webui.engine.vllm")


class VllmUnavailable(RuntimeError):
    pass


def sampling_kwargs(params: SamplingParams, max_tokens: int) -> dict[str, Any]:
    """Map our sampling parameters to ``vllm.SamplingParams`` keyword arguments."""
    kw: dict[str, Any] = {"max_tokens": max_tokens, "temperature": params.temperature, "top_p": params.top_p}
    if params.seed is not None:
        kw["seed"] = params.seed
    return kw


def build_prompt(request: GenerationRequest, apply_template: Any) -> dict[str, Any]:
    """Map a request to vLLM's ``{"prompt", "multi_modal_data"}`` input."""
    chat, images, videos = build_chat(request.messages, video_as_images=False)
    prompt: dict[str, Any] = {"prompt": apply_template(chat, tokenize=False, add_generation_prompt=True)}
    mm: dict[str, Any] = {}
    if images:
        mm["image"] = images
    if videos:
        import numpy as np

        mm["video"] = [np.stack([np.asarray(f) for f in frames]) for frames in videos]
    if mm:
        prompt["multi_modal_data"] = mm
    return prompt


class VllmGeneration(Generation):
    def __init__(self, engine: "VllmEngine", prompt: dict[str, Any], params: Any, request_id: str,
                 prompt_tokens: int, max_tokens: int) -> None:
        self.engine, self.prompt, self.params, self.request_id = engine, prompt, params, request_id
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens

    async def __aiter__(self) -> AsyncIterator[Delta]:  # type: ignore[override]
        sent = 0
        try:
            async for out in self.engine.llm.generate(self.prompt, self.params, self.request_id):
                if out.prompt_token_ids is not None:
                    self.prompt_tokens = len(out.prompt_token_ids)
                c = out.outputs[0]
                text = c.text[sent:]
                sent = len(c.text)
                n = len(c.token_ids) - self.completion_tokens
                self.completion_tokens = len(c.token_ids)
                if text or n:
                    yield Delta(text, n)
                if out.finished:
                    self.finish_reason = c.finish_reason or "stop"
        except ValueError as exc:  # vLLM rejects too-long prompts etc. with ValueError
            msg = str(exc)
            if "longer than" in msg or "context" in msg or "max_model_len" in msg:
                raise ContextLengthExceeded(msg) from None
            raise BadRequest(msg) from None

    async def cancel(self) -> None:
        await self.engine.llm.abort(self.request_id)


class VllmEngine(Engine):
    name = "vllm"

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.llm: Any = None
        self.processor: Any = None

    @property
    def native_concurrency(self) -> int:
        return self.settings.vllm_max_num_seqs

    async def load(self) -> None:
        try:
            import vllm  # noqa: F401
            from vllm import AsyncEngineArgs
        except ImportError as exc:
            raise VllmUnavailable("engine 'vllm' needs the vllm package (CUDA image only): " + str(exc)) from exc
        from transformers import AutoProcessor

        s = self.settings
        args = AsyncEngineArgs(model=s.model, max_model_len=s.max_context, trust_remote_code=s.trust_remote_code,
                               gpu_memory_utilization=s.vllm_gpu_memory_utilization,
                               tensor_parallel_size=s.vllm_tensor_parallel_size, max_num_seqs=s.vllm_max_num_seqs,
                               limit_mm_per_prompt={"image": s.max_images_per_request, "video": 1},
                               served_model_name=[s.model_name], dtype=s.dtype)
        try:
            from vllm.v1.engine.async_llm import AsyncLLM

            self.llm = AsyncLLM.from_engine_args(args)
        except ImportError:  # older vLLM
            from vllm import AsyncLLMEngine

            self.llm = AsyncLLMEngine.from_engine_args(args)
        self.processor = AutoProcessor.from_pretrained(s.model, trust_remote_code=s.trust_remote_code)

    @property
    def alive(self) -> bool:
        if self.dead_reason:
            return False
        errored = getattr(self.llm, "errored", False) if self.llm is not None else False
        return not errored

    async def generate(self, request: GenerationRequest) -> Generation:
        from vllm import SamplingParams as VSamplingParams

        prompt = build_prompt(request, self.processor.apply_chat_template)
        n_text = len(self.processor.tokenizer(prompt["prompt"])["input_ids"])  # lower bound (no image tokens)
        max_tokens = resolve_max_tokens(n_text, request.params.max_tokens, self.settings)
        params = VSamplingParams(**sampling_kwargs(request.params, max_tokens))
        return VllmGeneration(self, prompt, params, request.request_id, n_text, max_tokens)

    async def shutdown(self) -> None:
        if self.llm is not None and hasattr(self.llm, "shutdown"):
            self.llm.shutdown()
