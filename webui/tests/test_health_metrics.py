"""Health transitions and exact metrics (in-flight incl. client disconnects)."""
import asyncio
import json
import socket
import time

import httpx

from conftest import LiveServer, metric_value, running_app, sim_settings
from qvc_webui.app import create_app


async def test_health_loading_then_ok_then_dead():
    async with running_app(sim_settings(sim_load_s=0.3), ready=False) as (app, c):
        r = await c.get("/healthz")
        assert r.status_code == 503 and r.json() == {"status": "loading"}
        assert (await c.get("/livez")).status_code == 200
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_not_ready"
        assert "retry-after" in r.headers
        await asyncio.sleep(0.5)
        r = await c.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "model": "Qwen/Qwen3-VL-4B-Instruct+sim", "engine": "sim",
                            "device": "sim", "instance": "test-1", "version": "9.9.9"}
        app.state.service.engine.mark_dead("simulated GPU fault")
        r = await c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "dead"
        assert (await c.get("/livez")).status_code == 200
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_dead"
        assert metric_value((await c.get("/metrics")).text, "qvc_webui_ready") == 0


async def test_engine_failure_during_generation_marks_dead():
    async with running_app(sim_settings(sim_tpot_ms=20)) as (app, c):
        async def kill():
            await asyncio.sleep(0.1)
            app.state.service.engine.mark_dead("CUDA error: device lost")
        k = asyncio.create_task(kill())
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                       "max_tokens": 50, "stream": True})
        await k
        assert '"error"' in r.text and r.text.rstrip().endswith("data: [DONE]")
        assert (await c.get("/healthz")).status_code == 503
        assert metric_value((await c.get("/metrics")).text, "qvc_webui_requests_in_flight") == 0


async def test_load_failure_reports_failed():
    from qvc_webui.engines.sim import SimEngine

    class Broken(SimEngine):
        async def load(self):
            raise OSError("model dir missing")

    s = sim_settings()
    async with running_app(s, ready=False, engine=Broken(s)) as (_, c):
        await asyncio.sleep(0.05)
        r = await c.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "failed" and "model dir" in r.json()["detail"]


async def test_metrics_counters_and_info():
    async with running_app(sim_settings()) as (_, c):
        for _ in range(3):
            await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                       "max_tokens": 4})
        await c.post("/v1/chat/completions", json={"messages": []})
        m = (await c.get("/metrics")).text
        route = "/v1/chat/completions"
        assert metric_value(m, "qvc_webui_requests_total", {"route": route, "status": "200"}) == 3
        assert metric_value(m, "qvc_webui_requests_total", {"route": route, "status": "400"}) == 1
        assert metric_value(m, "qvc_webui_generated_tokens_total") == 12
        assert metric_value(m, "qvc_webui_time_to_first_token_seconds_count", {"source": "api"}) == 3
        assert metric_value(m, "qvc_webui_request_duration_seconds_count", {"route": route}) == 4
        assert metric_value(m, "qvc_webui_requests_in_flight") == 0
        assert metric_value(m, "qvc_webui_queue_depth") == 0
        assert metric_value(m, "qvc_webui_model_load_seconds") >= 0
        assert metric_value(m, "qvc_webui_info", {"engine": "sim", "instance": "test-1", "version": "9.9.9"}) == 1


def _in_flight(url: str) -> float:
    return metric_value(httpx.get(url + "/metrics").text, "qvc_webui_requests_in_flight")


def _wait_for(pred, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_in_flight_exact_with_client_disconnect_mid_stream(live_sim: LiveServer):
    url = live_sim.url
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 200, "stream": True}
    clients = []
    for _ in range(3):
        c = httpx.Client(timeout=10)
        resp = c.send(c.build_request("POST", url + "/v1/chat/completions", json=body), stream=True)
        it = resp.iter_lines()
        next(l for l in it if l.startswith("data:"))  # stream has started
        clients.append((c, resp, it))  # keep the iterator: dropping it closes the stream
    assert _in_flight(url) == 3
    # queued-but-not-started and closed-before-first-byte: raw socket, then vanish
    raw = socket.create_connection(("127.0.0.1", live_sim.port))
    payload = json.dumps(body).encode()
    raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    assert _wait_for(lambda: _in_flight(url) == 4)
    raw.close()
    assert _wait_for(lambda: _in_flight(url) == 3)
    for c, resp, _ in clients[:2]:
        resp.close()
        c.close()
    assert _wait_for(lambda: _in_flight(url) == 1)
    c, resp, it = clients[2]
    rest = list(it)
    assert rest[-1] == "data: [DONE]" or "data: [DONE]" in rest
    c.close()
    assert _wait_for(lambda: _in_flight(url) == 0)
    m = httpx.get(url + "/metrics").text
    assert metric_value(m, "qvc_webui_generations_total", {"finish_reason": "cancelled"}) == 3
    assert metric_value(m, "qvc_webui_generations_total", {"finish_reason": "length"}) == 1
    assert httpx.get(url + "/healthz").status_code == 200


def test_stream_disconnect_during_long_prefill_cancels_engine():
    # no token is sent for 10 s (long time to first token), so only the disconnect watcher can notice
    with LiveServer(create_app(sim_settings(sim_ttft_ms=10_000, warmup=False))) as srv:
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "stream": True}
        with httpx.Client(timeout=10) as c:
            resp = c.send(c.build_request("POST", srv.url + "/v1/chat/completions", json=body), stream=True)
            lines = resp.iter_lines()  # keep the iterator: dropping it closes the stream
            first = next(l for l in lines if l.startswith("data:"))
            assert '"role":"assistant"' in first
            assert _in_flight(srv.url) == 1
            resp.close()
        t0 = time.monotonic()
        assert _wait_for(lambda: _in_flight(srv.url) == 0, timeout=2.0)
        assert time.monotonic() - t0 < 2.0
        m = httpx.get(srv.url + "/metrics").text
        assert metric_value(m, "qvc_webui_generations_total", {"finish_reason": "cancelled"}) == 1
        assert metric_value(m, "qvc_webui_generated_tokens_total") == 0
        assert httpx.get(srv.url + "/healthz").status_code == 200


def test_in_flight_exact_non_stream_disconnect(live_sim: LiveServer):
    url = live_sim.url
    body = json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 200}).encode()
    raw = socket.create_connection(("127.0.0.1", live_sim.port))
    raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert _wait_for(lambda: _in_flight(url) == 1)
    raw.close()
    assert _wait_for(lambda: _in_flight(url) == 0, timeout=2.0)  # well before the 4 s generation ends


async def test_queue_depth_gauge():
    async with running_app(sim_settings(concurrency=1, queue_size=5, sim_ttft_ms=200)) as (_, c):
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        tasks = [asyncio.create_task(c.post("/v1/chat/completions", json=body)) for _ in range(3)]
        await asyncio.sleep(0.1)
        m = (await c.get("/metrics")).text
        assert metric_value(m, "qvc_webui_queue_depth") == 2
        assert metric_value(m, "qvc_webui_requests_in_flight") == 3
        for t in tasks:
            assert (await t).status_code == 200
        m = (await c.get("/metrics")).text
        assert metric_value(m, "qvc_webui_queue_depth") == 0
        assert metric_value(m, "qvc_webui_requests_in_flight") == 0
