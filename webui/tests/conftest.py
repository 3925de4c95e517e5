from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qvc_webui.app import create_app  # noqa: E402
from qvc_webui.config import Settings  # noqa: E402


def sim_settings(**kw: Any) -> Settings:
    base: dict[str, Any] = dict(engine="sim", sim_ttft_ms=5, sim_tpot_ms=1, ui_enabled=False, log_dir=None,
                                instance_id="test-1", version_label="9.9.9", max_context=512,
                                default_max_tokens=64)
    base.update(kw)
    return Settings(**base)


def png_data_url(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (255, 0, 0),
                 fmt: str = "PNG") -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def gif_data_url(frames: int = 6) -> str:
    from PIL import Image

    imgs = [Image.new("RGB", (48, 32), (i * 40 % 255, 0, 0)) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, ready: bool = True, **kw: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings, **kw)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            if ready:
                await wait_ready(client)
            yield app, client


async def wait_ready(client: httpx.AsyncClient, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get("/healthz")
        if r.status_code == 200:
            return
        if r.json().get("status") in ("failed", "dead"):
            raise AssertionError(r.json())
        await asyncio.sleep(0.02)
    raise AssertionError("service did not become ready")


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                return s.value
    raise KeyError(name)


class LiveServer:
    """uvicorn on a real socket in a background thread (disconnects, fuzzing, browser)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.app = app
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on", timeout_keep_alive=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("live server did not become ready")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_sim() -> Iterator[LiveServer]:
    with LiveServer(create_app(sim_settings(sim_tpot_ms=20, sim_ttft_ms=20))) as srv:
        yield srv


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from build_tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-qwen3vl"))
