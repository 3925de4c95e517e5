from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in ("src", "scripts", "sim"):
    sys.path.insert(0, str(ROOT / p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qvc_webui.config import Settings  # noqa: E402


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = dict(ui_enabled=False, log_dir=None, instance_id="test-1", version_label="9.9.9",
                                model="/models/tiny", control_dir="/nonexistent-qvc-control")
    base.update(kw)
    return Settings(**base)


def png_data_url(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (255, 0, 0)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                return s.value
    raise KeyError(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m qvc_webui`` as a child process on a free port (the real entry point)."""

    def __init__(self, env: dict[str, str], timeout: float = 900) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.timeout = timeout
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"qvc-webui-test-{self.port}.log", "w+")
        full = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("src", "sim")),
                "QVC_WEBUI_CONFIG": "/nonexistent", "QVC_WEBUI_PORT": str(self.port), "QVC_WEBUI_LOG_DIR": "",
                "QVC_WEBUI_HOST": "127.0.0.1", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "qvc_webui"], env=full, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait_healthy(self) -> "Server":
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.tail()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200:
                    return self
                if r.json().get("status") == "failed":
                    raise AssertionError(r.text + "\n" + self.tail())
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError("server did not become healthy:\n" + self.tail())

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-n:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cached = os.environ.get("QVC_TINY_MODEL")
    if cached and Path(cached, "config.json").exists():
        return Path(cached)
    from build_tiny_model import build

    return build(tmp_path_factory.mktemp("tiny-qwen3vl"))


@pytest.fixture(scope="session")
def control_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qvc-control")


@pytest.fixture(scope="session")
def vllm_server(tiny_model: Path, control_dir: Path) -> Iterator[Server]:
    """ONE real vLLM-CPU instance for the whole session (start: about 1-3 min on 2 cores)."""
    pytest.importorskip("vllm")
    srv = Server({"QVC_WEBUI_MODEL": str(tiny_model), "QVC_WEBUI_MAX_MODEL_LEN": "4096",
                  "QVC_WEBUI_INSTANCE_ID": "vllm-test", "QVC_WEBUI_VERSION_LABEL": "t-1",
                  "QVC_WEBUI_CONTROL_DIR": str(control_dir), "QVC_WEBUI_LIMIT_IMAGES": "2",
                  "QVC_WEBUI_MAX_BODY_BYTES": str(8 * 1024 * 1024),
                  # compact JSON from structured outputs: the random-weight model would emit whitespace
                  "QVC_WEBUI_EXTRA_VLLM_ARGS": '["--structured-outputs-config", '
                                               '"{\\"backend\\": \\"xgrammar\\", \\"disable_any_whitespace\\": true}"]'})
    try:
        yield srv.wait_healthy()
    finally:
        srv.stop()
