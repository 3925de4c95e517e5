"""The real engine: the `openai` SDK against one running CPU instance (vLLM + tiny random-weight
Qwen3-VL, started once per session by the ``vllm_server`` fixture), plus abuse: every hostile
request gets a 4xx or a clean end, the instance stays healthy and in-flight returns to 0."""
from __future__ import annotations

import base64
import io
import json
import os
import socket
import tempfile
import time

import httpx
import pytest

from conftest import metric_value, png_data_url

openai = pytest.importorskip("openai")
pytest.importorskip("vllm")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather for a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                   "required": ["city"], "additionalProperties": False}}}]


@pytest.fixture(scope="module")
def client(vllm_server):
    return openai.OpenAI(base_url=vllm_server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def mp4_data_url(frames: int = 8, size: int = 64) -> str:
    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "clip.mp4")
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 4, (size, size))
        for i in range(frames):
            w.write(np.full((size, size, 3), i * 30 % 255, np.uint8))
        w.release()
        data = open(path, "rb").read()
    return "data:video/mp4;base64," + base64.b64encode(data).decode()


def user(content):
    return [{"role": "user", "content": content}]


def healthy_and_idle(url: str) -> None:
    for _ in range(100):
        m = httpx.get(url + "/metrics", timeout=5).text
        if (metric_value(m, "qvc_webui_requests_in_flight") == 0
                and metric_value(m, "vllm:num_requests_running") == 0
                and metric_value(m, "vllm:num_requests_waiting") == 0):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("in-flight did not return to 0:\n" + m[-2000:])
    assert httpx.get(url + "/healthz", timeout=5).json()["status"] == "ok"


def test_health_and_metrics(vllm_server):
    h = httpx.get(vllm_server.url + "/healthz").json()
    assert h["status"] == "ok" and h["engine"] == "vllm" and h["device"] == "cpu" and h["version"] == "t-1"
    m = httpx.get(vllm_server.url + "/metrics").text
    assert metric_value(m, "qvc_webui_info", {"version": "t-1"}) == 1
    assert metric_value(m, "vllm:num_requests_running") == 0


def test_chat_non_stream_and_stream_with_usage(client, model):
    r = client.chat.completions.create(model=model, messages=user("hello"), max_tokens=5)
    assert r.object == "chat.completion" and r.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(model=model, messages=user("hello"), max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert sum(len(c.choices[0].delta.content or "") for c in chunks if c.choices) > 0


def test_image_and_video(client, model):
    r = client.chat.completions.create(model=model, max_tokens=3, messages=user([
        {"type": "image_url", "image_url": {"url": png_data_url()}}, {"type": "text", "text": "what?"}]))
    text_only = client.chat.completions.create(model=model, max_tokens=3, messages=user("what?"))
    assert r.usage.prompt_tokens > text_only.usage.prompt_tokens  # the image became tokens
    v = client.chat.completions.create(model=model, max_tokens=3, messages=user([
        {"type": "video_url", "video_url": {"url": mp4_data_url()}}, {"type": "text", "text": "what?"}]))
    assert v.usage.prompt_tokens > text_only.usage.prompt_tokens


def test_tool_call_round_trip(client, model):
    # strict: vLLM pins the arguments to the schema (xgrammar structural tag of the hermes format);
    # the random-weight model may wander in the whitespace the grammar allows: room for it
    r = client.chat.completions.create(model=model, messages=user("weather in Paris?"), tools=TOOLS, max_tokens=400,
                                       seed=1, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls = r.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert args["city"] in ("Paris", "Rome")
    msgs = user("weather in Paris?") + [
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": json.dumps({"temp_c": 21})}]
    r2 = client.chat.completions.create(model=model, messages=msgs, tools=TOOLS, max_tokens=5)
    assert r2.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens  # the tool result reached the prompt


def test_response_format_json_schema(client, model):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["n"], "additionalProperties": False}
    r = client.chat.completions.create(model=model, messages=user("a number"), max_tokens=30,
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "num", "schema": schema}})
    assert 0 <= json.loads(r.choices[0].message.content)["n"] <= 9


def test_logprobs(client, model):
    r = client.chat.completions.create(model=model, messages=user("hi"), max_tokens=3, logprobs=True, top_logprobs=2)
    lp = r.choices[0].logprobs.content
    assert len(lp) == 3 and all(len(t.top_logprobs) == 2 for t in lp)


@pytest.mark.parametrize("extra", [
    {"seed": 2 ** 64}, {"max_tokens": -1}, {"max_tokens": 10 ** 9}, {"top_p": 5}, {"n": 10 ** 9},
    {"temperature": -1}, {"logprobs": True, "top_logprobs": 10 ** 6}, {"stop": ["x"] * 100000},
    {"model": "no-such-model"},
])
def test_bad_sampling_values_are_typed_4xx(client, model, vllm_server, extra):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(**{"model": model, "messages": user("hi"), "max_tokens": 2, **extra})
    assert 400 <= ei.value.status_code < 500, (extra, ei.value)
    assert isinstance(ei.value, (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError))
    healthy_and_idle(vllm_server.url)


@pytest.mark.parametrize("extra", [{"temperature": 1e-300}, {"temperature": 0, "top_k": 1}, {"seed": -1},
                                   {"presence_penalty": 2, "frequency_penalty": -2}])
def test_extreme_but_valid_values_answer(client, model, vllm_server, extra):
    r = client.chat.completions.create(**{"model": model, "messages": user("hi"), "max_tokens": 2}, extra_body=extra)
    assert r.usage.completion_tokens <= 2
    healthy_and_idle(vllm_server.url)


def _bomb_png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG", optimize=True)  # 400 Mpixel, a few KB compressed
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'{"messages": "x"}', b'{"model": 1, "messages": [{"role": "user"}]}',
    json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                          "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                          "image_url": {"url": "http://169.254.169.254/x.png"}}]}]}).encode(),
    json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_data_url()}}] * 3}]}).encode(),
    b"bomb",
])
def test_hostile_bodies_are_4xx(vllm_server, model, body):
    if body == b"bomb":
        body = json.dumps({"model": model, "max_tokens": 2, "messages": user(
            [{"type": "image_url", "image_url": {"url": _bomb_png()}}])}).encode()
    r = httpx.post(vllm_server.url + "/v1/chat/completions", content=body,
                   headers={"content-type": "application/json"}, timeout=120)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert "error" in r.json() or "detail" in r.json()
    healthy_and_idle(vllm_server.url)


def test_oversized_body_is_413(vllm_server):
    r = httpx.post(vllm_server.url + "/v1/chat/completions", content=b"x" * (9 * 1024 * 1024),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413
    healthy_and_idle(vllm_server.url)


def test_disconnect_mid_stream_frees_the_request(vllm_server, model):
    body = json.dumps({"model": model, "stream": True, "max_tokens": 2000, "ignore_eos": True,
                       "messages": user("go")}).encode()
    port = int(vllm_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert b"200" in s.recv(200)
        s.recv(4096)
    healthy_and_idle(vllm_server.url)


def test_drain_contract_on_the_real_engine(vllm_server, control_dir, client, model):
    (control_dir / "drain").touch()
    try:
        time.sleep(0.6)  # stat cached for <= 0.5 s
        with pytest.raises(openai.InternalServerError) as ei:
            client.chat.completions.create(model=model, messages=user("hi"), max_tokens=2)
        assert ei.value.status_code == 503 and ei.value.response.headers["retry-after"] == "1"
        assert ei.value.body == {"message": "instance draining", "type": "unavailable", "code": "draining"}
        assert httpx.get(vllm_server.url + "/healthz").json() == {"status": "draining"}
    finally:
        (control_dir / "drain").unlink()
    time.sleep(0.6)
    assert client.chat.completions.create(model=model, messages=user("hi"), max_tokens=2).usage.completion_tokens == 2
