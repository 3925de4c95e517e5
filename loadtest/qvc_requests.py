"""Request bodies of the load test (no locust import: unit-testable).

Images are small generated PNG data: URLs; the video is an 8-frame animated GIF, which the
WebUI samples like a clip.
"""
from __future__ import annotations

import base64
import io
import json
import random

PROMPTS = ["Describe this image in one sentence.", "What objects can you see?", "Read any text in the picture.",
           "Is there a person in the image?", "Summarise the scene for a caption."]
TEXT_PROMPTS = ["Write a haiku about load balancers.", "Explain least-connections load balancing briefly.",
                "List three uses of a vision-language model.", "What is a GPU?"]


def _png(w: int, h: int, seed: int) -> bytes:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.randrange(w), rng.randrange(h)
        d.rectangle([x, y, x + w // 4, y + h // 4], fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _gif(w: int, h: int, frames: int) -> bytes:
    from PIL import Image

    imgs = [Image.new("RGB", (w, h), ((40 * i) % 256, 90, 200 - 10 * i)) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=125, loop=0)
    return buf.getvalue()


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# generated once per process: 8 distinct small PNGs (64..256 px) and one 8-frame GIF clip
IMAGES = [data_url("image/png", _png(64 + 32 * (i % 6), 64 + 24 * (i % 5), i)) for i in range(8)]
VIDEO = data_url("image/gif", _gif(96, 64, 8))


def build_body(kind: str, stream: bool, max_tokens: int, n_images: int = 3, rng: random.Random = random) -> dict:
    if kind == "text":
        content: object = rng.choice(TEXT_PROMPTS)
    else:
        parts: list[dict] = []
        if kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": rng.choice(IMAGES)}})
        elif kind == "images":
            parts += [{"type": "image_url", "image_url": {"url": u}} for u in rng.sample(IMAGES, n_images)]
        elif kind == "video":
            parts.append({"type": "video_url", "video_url": {"url": VIDEO}})
        else:
            raise ValueError(kind)
        parts.append({"type": "text", "text": rng.choice(PROMPTS)})
        content = parts
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def check_stream(lines: list[str]) -> str | None:
    """None if the SSE lines are a complete, successful chat stream, else the reason.

    An empty answer is fine when the model finished on its own (finish_reason "stop": it chose
    end-of-sequence first, which random-weight test models do); a stream that produced neither
    text nor a finish reason is "empty reply".
    """
    text, done, finished = "", False, None
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        if data == "[DONE]":
            done = True
            continue
        obj = json.loads(data)
        if "error" in obj:
            return f"stream error: {obj['error'].get('code') or obj['error'].get('message')}"
        for ch in obj.get("choices", []):
            text += ch.get("delta", {}).get("content") or ""
            finished = ch.get("finish_reason") or finished
    if not done:
        return "stream ended without [DONE]"
    return None if text or finished == "stop" else "empty reply"
