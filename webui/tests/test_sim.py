"""The sim test double (webui/sim/qvc_sim.py): same API subset and metric names as the product."""
from __future__ import annotations

import asyncio
import contextlib
import json

import httpx

from qvc_sim import create_sim_app

from conftest import metric_value, settings


@contextlib.asynccontextmanager
async def sim_client(**kw):
    app = create_sim_app(settings(engine="sim", **kw))
    startup = asyncio.Queue()
    sent = []
    await startup.put({"type": "lifespan.startup"})

    async def send(msg):
        sent.append(msg)
    life = asyncio.create_task(app({"type": "lifespan"}, startup.get, send))
    while not sent:
        await asyncio.sleep(0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s", timeout=10) as c:
            yield app, c
    finally:
        await startup.put({"type": "lifespan.shutdown"})
        await life


async def wait_ok(c):
    for _ in range(300):
        if (await c.get("/healthz")).status_code == 200:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("sim not ready")


async def test_sim_chat_stream_and_metrics(tmp_path):
    async with sim_client(sim={"ttft_ms": 1, "tpot_ms": 1, "load_s": 0.05}, control_dir=str(tmp_path)) as (app, c):
        assert (await c.get("/healthz")).json()["status"] == "loading"
        await wait_ok(c)
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                        "max_tokens": 4})
        body = r.json()
        assert r.status_code == 200 and body["model"] == "tiny" and body["system_fingerprint"] == "sim" and body["usage"]["completion_tokens"] == 4
        assert body["choices"][0]["message"]["content"].startswith("[simulated]")
        # one model id per fleet, as vLLM's: another name is vLLM's 404
        r = await c.post("/v1/chat/completions", json={"model": "tiny+other", "max_tokens": 2,
                                                        "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
        r = await c.post("/v1/chat/completions", json={"model": "tiny", "max_tokens": 2,
                                                        "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        async with c.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
                "stream_options": {"include_usage": True}}) as s:
            events = [line[6:] async for line in s.aiter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["usage"]["completion_tokens"] == 3
        m = (await c.get("/metrics")).text
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "qvc_webui_requests_in_flight",
                     "qvc_draining"):
            assert metric_value(m, name) == 0, name
        assert metric_value(m, "qvc_webui_ready") == 1
        assert (await c.post("/v1/chat/completions", content=b"{")).status_code == 400
        assert (await c.post("/v1/chat/completions", json={"messages": [], "max_tokens": 1})).status_code == 400


async def test_sim_batch_capacity_makes_requests_wait(tmp_path):
    async with sim_client(sim={"ttft_ms": 50, "tpot_ms": 1, "batch_capacity": 1}) as (app, c):
        await wait_ok(c)
        req = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        tasks = [asyncio.create_task(c.post("/v1/chat/completions", json=req)) for _ in range(3)]
        await asyncio.sleep(0.02)
        m = (await c.get("/metrics")).text
        assert metric_value(m, "vllm:num_requests_running") == 1
        assert metric_value(m, "vllm:num_requests_waiting") == 2
        assert metric_value(m, "qvc_webui_requests_in_flight") == 3
        assert all(r.status_code == 200 for r in await asyncio.gather(*tasks))


async def test_sim_drain(tmp_path):
    async with sim_client(sim={"ttft_ms": 1, "tpot_ms": 1}, control_dir=str(tmp_path)) as (app, c):
        await wait_ok(c)
        app.drain.ttl = 0
        (tmp_path / "drain").touch()
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "draining"
        assert (await c.get("/healthz")).json() == {"status": "draining"}
        assert metric_value((await c.get("/metrics")).text, "qvc_draining") == 1


async def test_sim_serves_the_products_chat_page():
    sim = create_sim_app(settings(engine="sim", ui_enabled=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://t") as c:
        r = await c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="q"' in r.text and "v1/chat/completions" in r.text
