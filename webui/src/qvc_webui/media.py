"""Decode image / video inputs (data: URLs; http(s) only when enabled) with hard limits."""
from __future__ import annotations

import base64
import binascii
import io
import math
import re
import warnings

from PIL import Image, ImageSequence, UnidentifiedImageError

from .config import Settings
from .engines.base import BadRequest, Part

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)


def _bad(msg: str, code: str = "invalid_image") -> BadRequest:
    return BadRequest(msg, code=code)


def fetch_url(url: str, settings: Settings, what: str) -> bytes:
    """Return the bytes behind a data: URL or (if allowed) an http(s) URL."""
    m = _DATA_URL.match(url)
    if m:
        payload = url[m.end():]
        if not m.group("b64"):
            from urllib.parse import unquote_to_bytes

            return unquote_to_bytes(payload)
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{what}: data URL is not valid base64") from None
    if url.lower().startswith(("http://", "https://")):
        if not settings.allow_remote_media:
            raise _bad(f"{what}: remote URLs are disabled on this server (allow_remote_media=false); "
                       "send a data: URL", code="remote_media_disabled")
        return _fetch_remote(url, settings, what)
    raise _bad(f"{what}: unsupported URL scheme (expected data: URL)")


def _fetch_remote(url: str, settings: Settings, what: str) -> bytes:
    import httpx

    limit = settings.remote_media_max_bytes
    try:
        with httpx.Client(timeout=settings.remote_media_timeout_s, follow_redirects=False) as client:
            with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise _bad(f"{what}: fetching URL returned HTTP {resp.status_code}", code="media_fetch_failed")
                buf = bytearray()
                for chunk in resp.iter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        raise _bad(f"{what}: remote media larger than {limit} bytes", code="media_too_large")
                return bytes(buf)
    except httpx.HTTPError as exc:
        raise _bad(f"{what}: fetching URL failed: {exc}", code="media_fetch_failed") from None


def _cap_pixels(img: Image.Image, max_pixels: int) -> Image.Image:
    img = img.convert("RGB")
    if img.width * img.height > max_pixels:
        scale = math.sqrt(max_pixels / (img.width * img.height))
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.BICUBIC)
    return img


def _open(data: bytes, settings: Settings, what: str) -> Image.Image:
    if not data:
        raise _bad(f"{what}: empty image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > settings.max_input_image_pixels:
                raise _bad(f"{what}: image has {img.width}x{img.height} pixels, more than the "
                           f"{settings.max_input_image_pixels} allowed", code="image_too_large")
            img.load()  # a truncated file fails here
    except BadRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise _bad(f"{what}: not a decodable image ({type(exc).__name__}: {exc})") from None
    return img


def decode_image(url: str, settings: Settings, what: str = "image") -> Part:
    return decode_image_bytes(fetch_url(url, settings, what), settings, what)


def decode_image_bytes(data: bytes, settings: Settings, what: str = "image") -> Part:
    img = _open(data, settings, what)
    return Part("image", image=_cap_pixels(img, settings.max_image_pixels))


def decode_video(url: str, settings: Settings, what: str = "video") -> Part:
    """Sample up to ``max_video_frames`` frames.  Animated GIF/WebP/APNG decode with Pillow;
    MP4/WebM etc. need the optional PyAV package."""
    return decode_video_bytes(fetch_url(url, settings, what), settings, what)


def decode_video_bytes(data: bytes, settings: Settings, what: str = "video") -> Part:
    frames: list[Image.Image] = []
    fps = 1.0
    try:
        img = _open(data, settings, what)
        n = getattr(img, "n_frames", 1)
        idx = _sample(n, settings.max_video_frames)
        duration_ms = img.info.get("duration") or 100
        for i, frame in enumerate(ImageSequence.Iterator(img)):
            if i in idx:
                frames.append(frame.copy())
        fps = 1000.0 / float(duration_ms) * (n / max(1, len(idx)))
    except BadRequest:
        frames = _decode_with_av(data, settings, what)
    if not frames:
        raise _bad(f"{what}: no frames decoded", code="invalid_video")
    per_frame = max(1024, settings.max_image_pixels // max(1, len(frames)))
    return Part("video", frames=[_cap_pixels(f, per_frame) for f in frames], fps=fps)


def _sample(n: int, k: int) -> set[int]:
    if n <= k:
        return set(range(n))
    return {round(i * (n - 1) / (k - 1)) for i in range(k)} if k > 1 else {0}


def _decode_with_av(data: bytes, settings: Settings, what: str) -> list[Image.Image]:
    try:
        import av  # type: ignore[import-not-found]
    except ImportError:
        raise _bad(f"{what}: not an animated image, and video containers (mp4/webm) need the optional "
                   "'av' package which is not installed", code="invalid_video") from None
    try:
        with av.open(io.BytesIO(data)) as container:
            decoded = [f.to_image() for f in container.decode(video=0)]
    except Exception as exc:  # av raises many error types
        raise _bad(f"{what}: not a decodable video ({exc})", code="invalid_video") from None
    idx = _sample(len(decoded), settings.max_video_frames)
    return [f for i, f in enumerate(decoded) if i in idx]
