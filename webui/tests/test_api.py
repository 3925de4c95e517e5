"""API contract with the sim engine (fast, deterministic)."""
import json

import pytest

from conftest import gif_data_url, png_data_url, running_app, sim_settings


def sse_events(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


async def test_non_stream_completion_with_usage():
    async with running_app(sim_settings()) as (_, c):
        r = await c.post("/v1/chat/completions", json={
            "model": "Qwen/Qwen3-VL-4B-Instruct+sim",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
            "max_tokens": 7, "temperature": 0.2, "top_p": 0.9})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion" and body["system_fingerprint"] == "sim"
        assert body["model"].endswith("+sim")
        assert body["choices"][0]["message"]["content"].startswith("[simulated]")
        assert body["choices"][0]["finish_reason"] == "length"
        u = body["usage"]
        assert u["completion_tokens"] == 7 and u["prompt_tokens"] > 0
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


async def test_stream_sse_with_done_and_usage():
    async with running_app(sim_settings()) as (_, c):
        r = await c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": [{"type": "text", "text": "describe"},
                                                      {"type": "image_url", "image_url": {"url": png_data_url((256, 256))}}]}],
            "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True}})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        ev = sse_events(r.text)
        assert ev[-1] == "[DONE]"
        assert ev[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in ev[:-1] if e["choices"])
        assert text.startswith("[simulated]")
        finals = [e for e in ev[:-1] if e["choices"] and e["choices"][0]["finish_reason"]]
        assert finals[0]["choices"][0]["finish_reason"] == "length"
        assert ev[-2]["usage"]["completion_tokens"] == 5
        assert ev[-2]["usage"]["prompt_tokens"] > 64  # image tokens counted


async def test_stop_strings_cut_output():
    async with running_app(sim_settings()) as (_, c):
        r = await c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "stop": ["produced"]})
        body = r.json()
        assert body["choices"][0]["message"]["content"] == "[simulated] this reply was "
        assert body["choices"][0]["finish_reason"] == "stop"
        r = await c.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "stop": "reply", "stream": True})
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in sse_events(r.text)[:-1])
        assert text == "[simulated] this "


async def test_models_and_openapi():
    async with running_app(sim_settings()) as (_, c):
        r = await c.get("/v1/models")
        assert r.json()["data"][0]["id"] == "Qwen/Qwen3-VL-4B-Instruct+sim"
        spec = (await c.get("/openapi.json")).json()
        assert "/v1/chat/completions" in spec["paths"] and "/healthz" in spec["paths"]


async def test_video_gif_accepted():
    async with running_app(sim_settings()) as (_, c):
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": gif_data_url()}}, {"type": "text", "text": "what happens?"}]}],
            "max_tokens": 3})
        assert r.status_code == 200, r.text


BAD = [
    ("malformed json", dict(content=b'{"messages": [', headers={"content-type": "application/json"}), 400,
     "invalid_json"),
    ("not an object", dict(json=[1, 2]), 400, "invalid_request"),
    ("missing messages", dict(json={"model": "x"}), 400, "invalid_request"),
    ("empty messages", dict(json={"messages": []}), 400, "invalid_request"),
    ("wrong type", dict(json={"messages": "hello"}), 400, "invalid_request"),
    ("bad role", dict(json={"messages": [{"role": "robot", "content": "x"}]}), 400, "invalid_request"),
    ("negative max_tokens", dict(json={"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}), 400,
     "invalid_request"),
    ("temperature range", dict(json={"messages": [{"role": "user", "content": "x"}], "temperature": 9}), 400,
     "invalid_request"),
    ("non-image", dict(json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8gd29ybGQ="}}]}]}), 400,
     "invalid_image"),
    ("truncated image", dict(json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "TRUNCATED"}}]}]}), 400, "invalid_image"),
    ("bad base64", dict(json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]}), 400, "invalid_image"),
    ("remote url disabled", dict(json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}]}]}), 400,
     "remote_media_disabled"),
    ("context too long", dict(json={"messages": [{"role": "user", "content": "word " * 600}]}), 400,
     "context_length_exceeded"),
    ("max_tokens beyond context", dict(json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}),
     400, "context_length_exceeded"),
    ("unknown model", dict(json={"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}), 404,
     "model_not_found"),
    ("oversized body", dict(content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}), 413,
     "body_too_large"),
    ("empty prompt", dict(json={"messages": [{"role": "user", "content": ""}]}), 400, "empty_prompt"),
]


@pytest.mark.parametrize("name,kw,status,code", BAD, ids=[b[0] for b in BAD])
async def test_bad_input_is_clean_4xx(name, kw, status, code):
    if kw.get("json", {}) and isinstance(kw["json"], dict) and "TRUNCATED" in json.dumps(kw["json"]):
        full = png_data_url((200, 200))
        kw = {"json": {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": full[: len(full) // 2 // 4 * 4]}}]}]}}
    async with running_app(sim_settings(max_body_bytes=200_000)) as (_, c):
        r = await c.post("/v1/chat/completions", **kw)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["code"] == code and err["type"] and err["message"]
        assert (await c.get("/healthz")).status_code == 200
        m = (await c.get("/metrics")).text
        assert "qvc_webui_requests_in_flight 0.0" in m


async def test_queue_full_429_with_retry_after():
    import asyncio

    async with running_app(sim_settings(concurrency=1, queue_size=1, sim_ttft_ms=300)) as (_, c):
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        first = asyncio.create_task(c.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(c.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.05)
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        assert int(r.headers["retry-after"]) >= 1
        assert (await first).status_code == 200 and (await second).status_code == 200
