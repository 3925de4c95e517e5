"""The instance shell (server.Instance) with a stand-in for vLLM's app: lifecycle, health, drain,
in-flight gauge, body cap, UI page.  The real vLLM engine is covered by test_vllm_openai.py."""
from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from qvc_webui.server import Instance

from conftest import metric_value, settings


class FakeEngine:
    errored = False


def fake_vllm_app(delay: float = 0.0, gate: asyncio.Event | None = None) -> Starlette:
    async def chat(request):
        body = await request.json()
        if body.get("stream"):
            async def gen():
                for i in range(5):
                    await asyncio.sleep(delay)
                    yield f"data: {json.dumps({'i': i})}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(gen(), media_type="text/event-stream")
        if gate is not None:
            await gate.wait()
        return JSONResponse({"object": "chat.completion", "choices": []})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def factory(app: Starlette, started: asyncio.Event | None = None, fail: Exception | None = None):
    async def start(s, stack: contextlib.AsyncExitStack):
        if started is not None:
            await started.wait()
        if fail is not None:
            raise fail
        return FakeEngine(), app, "cpu"
    return start


async def stream_chat(c: httpx.AsyncClient) -> tuple[int, str]:
    """One streamed chat completion: (status, the whole body)."""
    async with c.stream("POST", "/v1/chat/completions", json={"stream": True}) as r:
        return r.status_code, "".join([t async for t in r.aiter_text()])


@contextlib.asynccontextmanager
async def client_for(inst: Instance):
    await inst.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=inst), base_url="http://t", timeout=10) as c:
            yield c
    finally:
        await inst.shutdown()


async def wait_status(c: httpx.AsyncClient, status: str) -> dict:
    for _ in range(500):
        r = await c.get("/healthz")
        if r.json()["status"] == status:
            return r.json()
        await asyncio.sleep(0.01)
    raise AssertionError(r.text)


async def test_livez_and_loading_before_the_engine_exists():
    gate = asyncio.Event()
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app(), started=gate))
    async with client_for(inst) as c:
        assert (await c.get("/livez")).json() == {"status": "alive"}
        h = await c.get("/healthz")
        assert h.status_code == 503 and h.json()["status"] == "loading"
        r = await c.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"]["code"] == "not_ready"
        assert metric_value((await c.get("/metrics")).text, "qvc_webui_ready") == 0
        gate.set()
        body = await wait_status(c, "ok")
        assert body == {"status": "ok", "model": "tiny", "engine": "vllm", "device": "cpu",
                        "instance": "test-1", "version": "9.9.9"}
        m = (await c.get("/metrics")).text
        assert metric_value(m, "qvc_webui_ready") == 1
        assert metric_value(m, "qvc_webui_info", {"version": "9.9.9", "instance": "test-1"}) == 1


async def test_healthz_waits_for_the_warm_up_answer():
    gate = asyncio.Event()
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app(gate=gate)))
    async with client_for(inst) as c:
        await asyncio.sleep(0.1)
        assert (await c.get("/healthz")).json()["status"] == "loading"  # warm-up still running
        gate.set()
        await wait_status(c, "ok")


async def test_failed_start_and_dead_engine():
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app(), fail=RuntimeError("no model")))
    async with client_for(inst) as c:
        body = await wait_status(c, "failed")
        assert "no model" in body["detail"]
        assert (await c.get("/livez")).status_code == 200
    engine = FakeEngine()

    async def start(s, stack):
        return engine, fake_vllm_app(), "cpu"
    inst = Instance(settings(), engine_factory=start)
    async with client_for(inst) as c:
        await wait_status(c, "ok")
        engine.errored = True
        assert (await c.get("/healthz")).status_code == 503
        assert (await wait_status(c, "dead"))["status"] == "dead"


async def test_in_flight_counts_v1_requests_until_the_stream_ends():
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app(delay=0.05)))
    async with client_for(inst) as c:
        await wait_status(c, "ok")

        task = asyncio.create_task(stream_chat(c))
        seen = 0
        for _ in range(100):
            seen = max(seen, metric_value((await c.get("/metrics")).text, "qvc_webui_requests_in_flight"))
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == 1
        code, text = await task
        assert code == 200 and text.endswith("data: [DONE]\n\n")
        assert metric_value((await c.get("/metrics")).text, "qvc_webui_requests_in_flight") == 0


async def test_body_cap_is_413_json():
    inst = Instance(settings(max_body_bytes=2048), engine_factory=factory(fake_vllm_app()))
    async with client_for(inst) as c:
        await wait_status(c, "ok")
        r = await c.post("/v1/chat/completions", content=b"x" * 4096, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        async def chunks():  # no content-length: counted while reading
            for _ in range(4):
                yield b"y" * 1024
        r = await c.post("/v1/chat/completions", content=chunks())
        assert r.status_code == 413
        assert metric_value((await c.get("/metrics")).text, "qvc_webui_requests_in_flight") == 0


async def test_drain_refuses_new_work_keeps_running_streams(tmp_path):
    inst = Instance(settings(control_dir=str(tmp_path)), engine_factory=factory(fake_vllm_app(delay=0.05)))
    inst.drain.ttl = 0
    async with client_for(inst) as c:
        await wait_status(c, "ok")

        task = asyncio.create_task(stream_chat(c))
        await asyncio.sleep(0.02)
        (tmp_path / "drain").touch()
        r = await c.post("/v1/chat/completions", json={})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {"error": {"message": "instance draining", "type": "unavailable", "code": "draining"}}
        assert (await c.get("/healthz")).json() == {"status": "draining"}
        assert metric_value((await c.get("/metrics")).text, "qvc_draining") == 1
        code, text = await task
        assert code == 200 and text.endswith("[DONE]\n\n")
        (tmp_path / "drain").unlink()
        assert (await c.get("/healthz")).status_code == 200
        assert metric_value((await c.get("/metrics")).text, "qvc_draining") == 0


async def test_ui_page_is_a_client_of_v1():
    inst = Instance(settings(ui_enabled=True, ui_title="<b>T</b>"), engine_factory=factory(fake_vllm_app()))
    async with client_for(inst) as c:
        r = await c.get("/")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "v1/chat/completions" in r.text and "&lt;b&gt;T&lt;/b&gt;" in r.text and "<b>T</b>" not in r.text
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app()))
    async with client_for(inst) as c:
        await wait_status(c, "ok")
        assert (await c.get("/")).status_code == 404  # UI off: "/" is vLLM's (no such route)


async def test_http_metrics_for_the_monitoring_rules():
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app()))
    async with client_for(inst) as c:
        await wait_status(c, "ok")
        async with c.stream("POST", "/v1/chat/completions", json={"stream": True}) as r:
            [t async for t in r.aiter_text()]
        await c.post("/v1/chat/completions", json={})
        await c.get("/v1/nope")
        m = (await c.get("/metrics")).text
        assert metric_value(m, "qvc_webui_requests_total", {"route": "/v1/chat/completions", "status": "200"}) == 2
        assert metric_value(m, "qvc_webui_requests_total", {"route": "/v1/other", "status": "404"}) == 1
        assert metric_value(m, "qvc_webui_request_duration_seconds_count", {"route": "/v1/chat/completions"}) == 2
        assert metric_value(m, "qvc_webui_time_to_first_token_seconds_count", {"source": "api"}) == 1  # streams only
        assert metric_value(m, "qvc_webui_queue_depth") == 0


async def test_vllm_handlers_find_a_server_to_stop():
    """vLLM's engine-error handler reads app.state.server (serve_http sets it; we embed vLLM's app)."""
    inst = Instance(settings(), engine_factory=factory(fake_vllm_app()))
    sentinel = object()
    inst.uvicorn_server = sentinel
    async with client_for(inst) as c:
        await wait_status(c, "ok")
        assert inst.inner.state.server is sentinel
