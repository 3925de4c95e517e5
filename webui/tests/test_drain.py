"""Instance drain contract: the control file 'drain' makes the app refuse NEW work with 503."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from qvc_webui.drain import DRAIN_BODY, DrainFlag, DrainMiddleware

from conftest import metric_value, running_app, sim_settings


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


async def test_app_drain_lets_in_flight_finish_and_resumes(tmp_path):
    settings = sim_settings(control_dir=str(tmp_path), sim_tpot_ms=20)
    async with running_app(settings) as (app, client):
        app.state.drain.ttl = 0  # no cache in the test: state changes are seen at once
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "stream": True}

        async def long_stream() -> tuple[int, str]:
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                text = "".join([t async for t in r.aiter_text()])
                return r.status_code, text

        task = asyncio.create_task(long_stream())
        for _ in range(200):
            m = (await client.get("/metrics")).text
            if metric_value(m, "qvc_webui_requests_in_flight") == 1:
                break
            await asyncio.sleep(0.01)
        (tmp_path / "drain").touch()

        r = await client.post("/v1/chat/completions", json={**body, "stream": False})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json() == {"error": {"message": "instance draining", "type": "unavailable", "code": "draining"}}
        h = await client.get("/healthz")
        assert h.status_code == 503 and h.json() == {"status": "draining"}
        m = (await client.get("/metrics")).text
        assert metric_value(m, "qvc_draining") == 1
        assert metric_value(m, "qvc_webui_requests_in_flight") == 1

        code, text = await task  # the in-flight stream was not cut
        assert code == 200 and text.rstrip().endswith("data: [DONE]")
        assert json.loads(text.split("data: ")[1])["object"] == "chat.completion.chunk"
        m = (await client.get("/metrics")).text
        assert metric_value(m, "qvc_webui_requests_in_flight") == 0

        (tmp_path / "drain").unlink()
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.post("/v1/chat/completions", json={**body, "stream": False})).status_code == 200
        assert metric_value((await client.get("/metrics")).text, "qvc_draining") == 0
