"""The tiny random-weight Qwen3-VL checkpoint through the real transformers code path."""
import json

from conftest import gif_data_url, png_data_url, running_app


def tiny_settings(path, **kw):
    from qvc_webui.config import Settings

    base = dict(engine="transformers", model=str(path), device="cpu", ui_enabled=False, log_dir=None,
                max_context=1024, default_max_tokens=16, concurrency=2)
    base.update(kw)
    return Settings(**base)


async def test_tiny_model_generates_text_image_video_and_streams(tiny_model):
    async with running_app(tiny_settings(tiny_model)) as (app, c):
        h = (await c.get("/healthz")).json()
        assert h["engine"] == "transformers" and h["device"] == "cpu" and h["model"] == tiny_model.name
        eng = app.state.service.engine
        assert type(eng.model).__name__ == "Qwen3VLForConditionalGeneration"
        assert eng.system_fingerprint == "tiny-random-weights"
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": png_data_url((96, 64))}},
            {"type": "text", "text": "What is in the picture?"}]}], "max_tokens": 6, "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["usage"]["completion_tokens"] <= 6 and body["usage"]["prompt_tokens"] > 12
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
        assert body["system_fingerprint"] == "tiny-random-weights"
        r2 = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": png_data_url((96, 64))}},
            {"type": "text", "text": "What is in the picture?"}]}], "max_tokens": 6, "temperature": 0})
        assert r2.json()["choices"][0]["message"] == body["choices"][0]["message"]  # greedy is deterministic
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hello"}],
                                                       "max_tokens": 8, "temperature": 0.8, "seed": 1,
                                                       "stream": True, "stream_options": {"include_usage": True}})
        events = [l[6:] for l in r.text.splitlines() if l.startswith("data: ")]
        assert events[-1] == "[DONE]"
        usage = json.loads(events[-2])["usage"]
        assert 1 <= usage["completion_tokens"] <= 8
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": gif_data_url(4)}}, {"type": "text", "text": "what happens?"}]}],
            "max_tokens": 3})
        assert r.status_code == 200, r.text
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi " * 1500}]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_build_tiny_model_cli(tmp_path):
    from build_tiny_model import main

    assert main([str(tmp_path / "m")]) == 0
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3_vl"
    t = cfg["text_config"]
    assert sum(t["rope_parameters"]["mrope_section"]) == t["head_dim"] // 2
    assert (tmp_path / "m" / "QVC_TINY_RANDOM_WEIGHTS").exists()
