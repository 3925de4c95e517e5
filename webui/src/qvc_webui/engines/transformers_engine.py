"""``transformers``: Qwen3-VL through Hugging Face transformers (GPU bf16 / CPU fp32).

* model: ``AutoModelForImageTextToText`` (-> ``Qwen3VLForConditionalGeneration``)
* processor: ``AutoProcessor``; when that fails because torchvision is missing (the
  Qwen3-VL *video* processor needs it, and torchvision cannot be installed beside the
  local torch CPU wheel) the processor is assembled from the checkpoint's image processor
  (Pillow backend) and tokenizer without a video processor.  Videos are then sampled into
  frames by :mod:`qvc_webui.media` and given to the model as an image sequence.
* streaming: ``model.generate`` runs in a worker thread; a ``TextStreamer`` subclass hands
  decoded text to the event loop with ``call_soon_threadsafe`` (no thread blocks on a
  queue); a ``StoppingCriteria`` watching a ``threading.Event`` stops cancelled requests.
* concurrency is bounded by the service's admission control (``concurrency``).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any, AsyncIterator

from .base import BadRequest, Delta, Engine, Generation, GenerationRequest, Message, resolve_max_tokens

log = logging.getLogger("qvc_webui.engine.transformers")


def build_chat(messages: list[Message], video_as_images: bool) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
    """Map our messages to chat-template dicts + ordered image (and video) lists."""
    chat: list[dict[str, Any]] = []
    images: list[Any] = []
    videos: list[Any] = []
    for m in messages:
        content: list[dict[str, Any]] = []
        for p in m.parts:
            if p.kind == "text":
                content.append({"type": "text", "text": p.text})
            elif p.kind == "image":
                content.append({"type": "image"})
                images.append(p.image)
            elif video_as_images:
                for i, f in enumerate(p.frames):
                    content.append({"type": "text", "text": f"<{i / max(p.fps, 1e-6):.1f} seconds>"})
                    content.append({"type": "image"})
                    images.append(f)
            else:
                content.append({"type": "video"})
                videos.append(p.frames)
        chat.append({"role": m.role, "content": content})
    return chat, images, videos


class TransformersGeneration(Generation):
    def __init__(self, engine: "TransformersEngine", inputs: Any, prompt_tokens: int, max_tokens: int,
                 params: Any) -> None:
        self.engine = engine
        self.inputs = inputs
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.params = params
        self.cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    async def __aiter__(self) -> AsyncIterator[Delta]:  # type: ignore[override]
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        loop = asyncio.get_running_loop()
        q: asyncio.Queue[tuple[str, Any, int]] = asyncio.Queue()
        eng = self.engine
        gen = self
        pending = [0]

        class _Streamer(TextStreamer):
            def put(self, value: Any) -> None:
                if not self.next_tokens_are_prompt:
                    pending[0] += int(value.numel())
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                n, pending[0] = pending[0], 0
                if text or n:
                    loop.call_soon_threadsafe(q.put_nowait, ("text", text, n))

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                import torch

                return torch.full((input_ids.shape[0],), gen.cancelled.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        streamer = _Streamer(eng.tokenizer, skip_prompt=True, skip_special_tokens=True)
        p = self.params
        kwargs: dict[str, Any] = dict(self.inputs, streamer=streamer, max_new_tokens=self.max_tokens,
                                      stopping_criteria=StoppingCriteriaList([_Cancel()]))
        if p.temperature and p.temperature > 0:
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        def run() -> None:
            import torch

            try:
                if p.seed is not None:
                    torch.manual_seed(p.seed)
                with torch.inference_mode():
                    out = eng.model.generate(**kwargs)
                new = out[0, self.prompt_tokens:]
                eos = set(eng.eos_ids)
                last = int(new[-1]) if len(new) else -1
                reason = "cancelled" if self.cancelled.is_set() else ("stop" if last in eos else "length")
                loop.call_soon_threadsafe(q.put_nowait, ("end", reason, int(len(new))))
            except BaseException as exc:  # noqa: BLE001 - forwarded to the request
                loop.call_soon_threadsafe(q.put_nowait, ("error", exc, 0))

        self._thread = threading.Thread(target=run, name=f"generate-{id(self):x}", daemon=True)
        self._thread.start()
        try:
            while True:
                kind, value, n = await q.get()
                if kind == "text":
                    self.completion_tokens += n
                    if value:
                        yield Delta(value, n)
                elif kind == "end":
                    self.completion_tokens = n
                    self.finish_reason = value
                    return
                else:
                    raise value
        finally:
            self.cancelled.set()  # consumer left early (disconnect, stop string): stop the thread

    async def cancel(self) -> None:
        self.cancelled.set()


class TransformersEngine(Engine):
    name = "transformers"

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.model: Any = None
        self.processor: Any = None
        self.tokenizer: Any = None
        self.video_as_images = True
        self.eos_ids: list[int] = []

    async def load(self) -> None:
        await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        s = self.settings
        device = self.device
        if s.dtype != "auto":
            dtype = getattr(torch, s.dtype)
        else:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        if (Path(s.model) / "QVC_TINY_RANDOM_WEIGHTS").exists():
            self.system_fingerprint = "tiny-random-weights"
            log.warning("serving the tiny RANDOM-WEIGHT test checkpoint: answers are meaningless")
        self.processor, self.video_as_images = load_processor(s.model, s.trust_remote_code)
        self.tokenizer = self.processor.tokenizer
        model = AutoModelForImageTextToText.from_pretrained(s.model, dtype=dtype,
                                                            trust_remote_code=s.trust_remote_code)
        self.model = model.to(device).eval()
        eos = self.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        self.eos_ids = sorted({int(i) for i in ids})
        log.info("transformers model loaded", extra={"model": s.model, "device": device, "dtype": str(dtype),
                                                     "video_as_images": self.video_as_images,
                                                     "class": type(self.model).__name__})

    def _prepare(self, request: GenerationRequest) -> tuple[Any, int]:
        chat, images, videos = build_chat(request.messages, self.video_as_images)
        try:
            text = self.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        except Exception as exc:
            raise BadRequest(f"cannot apply the chat template: {exc}", code="invalid_messages") from None
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
        try:
            inputs = self.processor(**kwargs)
        except Exception as exc:
            raise BadRequest(f"cannot process the inputs: {type(exc).__name__}: {exc}",
                             code="invalid_input") from None
        inputs.pop("token_type_ids", None)
        return inputs.to(self.model.device), int(inputs["input_ids"].shape[1])

    async def generate(self, request: GenerationRequest) -> Generation:
        if self.model is None:
            raise RuntimeError("model not loaded")
        inputs, prompt_tokens = await asyncio.to_thread(self._prepare, request)
        max_tokens = resolve_max_tokens(prompt_tokens, request.params.max_tokens, self.settings)
        return TransformersGeneration(self, inputs, prompt_tokens, max_tokens, request.params)


def load_processor(model: str, trust_remote_code: bool = False) -> tuple[Any, bool]:
    """Return (processor, video_as_images)."""
    from transformers import AutoProcessor

    try:
        proc = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
        return proc, getattr(proc, "video_processor", None) is None
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise
        log.warning("torchvision missing: building the processor without a video processor; "
                    "videos are fed as frame sequences", extra={"error": str(exc).splitlines()[0]})
    from transformers import AutoImageProcessor, AutoTokenizer
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    tok = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    image_processor = AutoImageProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
    template = getattr(tok, "chat_template", None)
    proc = ImageOnlyQwen3VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=None,
                                     chat_template=template)
    return proc, True
