"""loadtest/qvc_requests.py: the request mix's bodies and the stream check."""
import base64
import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "loadtest"))
pytest.importorskip("PIL")
import qvc_requests as q  # noqa: E402


def sse(obj):
    return "data: " + json.dumps(obj)


def test_bodies_of_each_kind():
    rng = random.Random(1)
    text = q.build_body("text", False, 16, rng=rng)
    assert isinstance(text["messages"][0]["content"], str) and text["max_tokens"] == 16 and not text["stream"]
    img = q.build_body("image", True, 8, rng=rng)["messages"][0]["content"]
    assert [p["type"] for p in img] == ["image_url", "text"]
    png = base64.b64decode(img[0]["image_url"]["url"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    many = q.build_body("images", False, 8, n_images=3, rng=rng)["messages"][0]["content"]
    urls = [p["image_url"]["url"] for p in many if p["type"] == "image_url"]
    assert len(urls) == 3 == len(set(urls))
    vid = q.build_body("video", True, 8, rng=rng)
    assert vid["messages"][0]["content"][0]["video_url"]["url"].startswith("data:image/gif;base64,R0lG")
    assert vid["stream_options"] == {"include_usage": True}
    with pytest.raises(ValueError):
        q.build_body("audio", False, 8)


def test_check_stream():
    ok = [sse({"choices": [{"delta": {"role": "assistant", "content": ""}}]}), "",
          sse({"choices": [{"delta": {"content": "hi"}}]}), "", "data: [DONE]"]
    assert q.check_stream(ok) is None
    assert q.check_stream(ok[:-1]) == "stream ended without [DONE]"
    assert q.check_stream([ok[0], "data: [DONE]"]) == "empty reply"
    eos_first = [ok[0], sse({"choices": [{"delta": {}, "finish_reason": "stop"}]}), "data: [DONE]"]
    assert q.check_stream(eos_first) is None
    cut = [ok[0], sse({"choices": [{"delta": {}, "finish_reason": "length"}]}), "data: [DONE]"]
    assert q.check_stream(cut) == "empty reply"
    err = [sse({"error": {"message": "boom", "code": "engine_dead"}}), "data: [DONE]"]
    assert q.check_stream(err) == "stream error: engine_dead"
