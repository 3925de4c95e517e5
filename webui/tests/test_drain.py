"""Instance drain contract: the control file 'drain' makes the app refuse NEW work with 503."""
from __future__ import annotations

import httpx
import pytest

from qvc_webui.drain import DRAIN_BODY, DrainFlag, DrainMiddleware



def test_flag_caches_the_stat_for_ttl(tmp_path):
    now = [100.0]
    flag = DrainFlag(str(tmp_path), ttl=0.5, clock=lambda: now[0])
    assert flag.active is False
    (tmp_path / "drain").touch()
    assert flag.active is False  # cached
    now[0] += 0.49
    assert flag.active is False
    now[0] += 0.02
    assert flag.active is True
    (tmp_path / "drain").unlink()
    now[0] += 0.5
    assert flag.active is False


def test_flag_rejects_long_ttl(tmp_path):
    with pytest.raises(ValueError):
        DrainFlag(str(tmp_path), ttl=2)


def test_flag_default_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("QVC_CONTROL_DIR", str(tmp_path))
    assert DrainFlag().path == str(tmp_path / "drain")


async def test_middleware_refuses_before_the_inner_app_runs(tmp_path):
    called = []

    async def inner(scope, receive, send):
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    (tmp_path / "drain").touch()
    app = DrainMiddleware(inner, DrainFlag(str(tmp_path), ttl=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/v1/chat/completions", content=b"{}")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.content == DRAIN_BODY
        assert (await c.get("/")).status_code == 503  # UI
        for ops in ("/healthz", "/livez", "/metrics"):
            assert (await c.get(ops)).status_code == 200
    assert called == ["/healthz", "/livez", "/metrics"]
