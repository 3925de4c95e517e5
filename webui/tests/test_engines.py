"""Engine selection, vLLM import guard + request mapping, stop matching, non-blocking logs."""
import io
import json
import logging
import threading
import time

import pytest

from conftest import sim_settings
from qvc_webui.config import Settings
from qvc_webui.engines import create_engine
from qvc_webui.engines.base import GenerationRequest, Message, Part, SamplingParams, StopMatcher


@pytest.mark.parametrize("name,cls", [("sim", "SimEngine"), ("transformers", "TransformersEngine"),
                                      ("vllm", "VllmEngine")])
def test_engine_selection(name, cls):
    eng = create_engine(Settings(engine=name, log_dir=None, device="cpu"))
    assert type(eng).__name__ == cls and eng.name == name


def test_default_engine_is_not_sim():
    assert Settings().engine == "transformers"


def test_sim_concurrency_defaults_to_batch_capacity():
    assert create_engine(sim_settings(sim_batch_capacity=77)).default_concurrency == 77
    assert create_engine(sim_settings(sim_batch_capacity=77, concurrency=3)).default_concurrency == 3


async def test_vllm_import_guard():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm installed")
    from qvc_webui.engines.vllm_engine import VllmUnavailable

    with pytest.raises(VllmUnavailable, match="vllm"):
        await create_engine(Settings(engine="vllm", log_dir=None, device="cpu")).load()


def test_vllm_request_mapping():
    from PIL import Image

    from qvc_webui.engines.vllm_engine import build_prompt, sampling_kwargs

    img = Image.new("RGB", (32, 32))
    req = GenerationRequest([Message("system", [Part("text", text="sys")]),
                             Message("user", [Part("image", image=img), Part("text", text="what?"),
                                              Part("video", frames=[img, img], fps=2.0)])],
                            SamplingParams(max_tokens=9, temperature=0.3, top_p=0.8, seed=4), "r1")
    seen = {}

    def template(chat, tokenize, add_generation_prompt):
        seen["chat"] = chat
        return "PROMPT"

    p = build_prompt(req, template)
    assert p["prompt"] == "PROMPT"
    assert p["multi_modal_data"]["image"] == [img]
    assert p["multi_modal_data"]["video"][0].shape == (2, 32, 32, 3)
    assert [c["type"] for c in seen["chat"][1]["content"]] == ["image", "text", "video"]
    assert sampling_kwargs(req.params, 9) == {"max_tokens": 9, "temperature": 0.3, "top_p": 0.8, "seed": 4}


def test_stop_matcher_across_chunk_boundaries():
    m = StopMatcher(["END", "</s>"])
    out, stopped = "", False
    for chunk in ["hel", "lo E", "N", "D tail"]:
        text, stopped = m.feed(chunk)
        out += text
        if stopped:
            break
    assert (out, stopped) == ("hello ", True)
    m = StopMatcher(["xyz"])
    assert "".join(m.feed(c)[0] for c in ["ab", "cx", "y"]) + m.flush() == "abcxy"


def test_logging_never_blocks_on_a_stalled_sink(tmp_path):
    from qvc_webui.logging_setup import NonBlockingSink, JsonFormatter

    gate = threading.Event()

    class Stalled(io.StringIO):
        def write(self, s):
            gate.wait()  # the "filesystem" hangs
            return super().write(s)

    stream = Stalled()
    dropped = []
    sink = NonBlockingSink(lambda: stream, maxsize=10, name="file", on_drop=dropped.append)
    sink.setFormatter(JsonFormatter({"instance": "t"}))
    lg = logging.getLogger("qvc-test-stall")
    lg.propagate = False
    lg.addHandler(sink)
    t0 = time.perf_counter()
    for i in range(1000):
        lg.warning("line %d", i, extra={"k": i})
    assert time.perf_counter() - t0 < 1.0
    assert len(dropped) >= 980 and sink.dropped == len(dropped)
    gate.set()
    sink.flush_wait()
    first = json.loads(stream.getvalue().splitlines()[0])
    assert first["msg"] == "line 0" and first["instance"] == "t" and first["k"] == 0
    lg.removeHandler(sink)


def test_setup_logging_writes_json_file(tmp_path):
    from qvc_webui.logging_setup import flush_logs, setup_logging

    path = setup_logging("INFO", str(tmp_path / "logs"), "inst-7", {"instance": "inst-7"})
    logging.getLogger("qvc_webui.x").info("hello", extra={"a": 1})
    flush_logs()
    time.sleep(0.1)
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    assert path.name == "qvc-webui-inst-7.log"
    assert any(l["msg"] == "hello" and l["a"] == 1 and l["instance"] == "inst-7" for l in lines)
    setup_logging("INFO", None, "inst-7", {})
