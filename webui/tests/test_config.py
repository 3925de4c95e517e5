import json

import pytest

from qvc_webui.config import DEFAULT_MODEL, ConfigError, load_settings


def test_missing_file_gives_defaults(tmp_path):
    s = load_settings(tmp_path / "nope.yaml", environ={})
    assert s.model == DEFAULT_MODEL and s.engine == "vllm" and s.port == 8080
    assert s.allow_remote_media is False and s.tool_call_parser == "hermes"
    assert s.control_dir == "/run/qvc-control"


def test_yaml_and_env_override(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("port: 9000\nmodel: /models/Qwen3-VL-4B-Instruct\nversion_label: '1.10'\nsim: {ttft_ms: 5}\n")
    env = {"QVC_WEBUI_CONFIG": str(p), "QVC_WEBUI_PORT": "9100", "QVC_WEBUI_MAX_MODEL_LEN": "4096",
           "QVC_WEBUI_INSTANCE_ID": "gpu-a", "QVC_WEBUI_VERSION_LABEL": "2.10", "QVC_WEBUI_HF_OFFLINE": "true",
           "QVC_WEBUI_EXTRA_VLLM_ARGS": '["--kv-cache-dtype", "fp8"]', "QVC_WEBUI_SIM": '{"tpot_ms": 2}'}
    s = load_settings(environ=env)
    assert (s.port, s.max_model_len, s.instance_id) == (9100, 4096, "gpu-a")
    assert s.version_label == "2.10" and s.hf_offline is True
    assert s.model_name == "Qwen3-VL-4B-Instruct"
    assert s.extra_vllm_args == ["--kv-cache-dtype", "fp8"]
    assert s.sim == {"tpot_ms": 2}


@pytest.mark.parametrize("content,needle", [
    ("port: 99999\n", "port"),
    ("engine: transformers\n", "engine"),  # the transformers engine is gone: vLLM only
    ("bogus_key: 1\n", "bogus_key"),
    ("limit_images: -1\n", "limit_images"),
    ("- a\n- b\n", "mapping"),
    ("port: [\n", "YAML"),
])
def test_bad_config_names_the_key(tmp_path, content, needle):
    p = tmp_path / "c.yaml"
    p.write_text(content)
    with pytest.raises(ConfigError) as ei:
        load_settings(p, environ={})
    assert needle in str(ei.value)


def test_unknown_env_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="QVC_WEBUI_NOPE"):
        load_settings(tmp_path / "x.yaml", environ={"QVC_WEBUI_NOPE": "1"})


def _opt(args, name):
    return args[args.index(name) + 1]


def test_vllm_args_cpu_defaults(tmp_path):
    s = load_settings(tmp_path / "x.yaml", environ={"QVC_WEBUI_MODEL": "/models/local/Qwen3-VL-4B-Instruct"})
    a = s.vllm_args("cpu")
    assert _opt(a, "--model") == "/models/local/Qwen3-VL-4B-Instruct"
    assert _opt(a, "--served-model-name") == "Qwen3-VL-4B-Instruct"
    assert _opt(a, "--dtype") == "float32" and "--enforce-eager" in a
    assert json.loads(_opt(a, "--limit-mm-per-prompt")) == {"image": 8, "video": 1}
    assert json.loads(_opt(a, "--mm-processor-kwargs")) == {"max_pixels": 1280 * 32 * 32}
    assert _opt(a, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in a
    assert _opt(a, "--allowed-media-domains") == "media.invalid"  # no remote fetches (SSRF)
    assert "--gpu-memory-utilization" not in a


def test_vllm_args_gpu_and_switches(tmp_path):
    env = {"QVC_WEBUI_TOOL_CALL_PARSER": "", "QVC_WEBUI_ALLOW_REMOTE_MEDIA": "true",
           "QVC_WEBUI_GPU_MEMORY_UTILIZATION": "0.8", "QVC_WEBUI_LIMIT_VIDEOS": "0", "QVC_WEBUI_DTYPE": "bfloat16"}
    a = load_settings(tmp_path / "x.yaml", environ=env).vllm_args("cuda")
    assert "--enable-auto-tool-choice" not in a and "--allowed-media-domains" not in a
    assert _opt(a, "--gpu-memory-utilization") == "0.8" and "--enforce-eager" not in a
    assert _opt(a, "--dtype") == "bfloat16"
    assert json.loads(_opt(a, "--limit-mm-per-prompt"))["video"] == 0


def test_vllm_args_parse_with_vllms_own_parser(tmp_path):
    """The arguments we generate are accepted by vLLM's OpenAI server argument parser."""
    pytest.importorskip("vllm")
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    for device in ("cpu", "cuda"):
        args = make_arg_parser(FlexibleArgumentParser()).parse_args(
            load_settings(tmp_path / "x.yaml", environ={}).vllm_args(device))
        assert args.tool_call_parser == "hermes" and args.enable_auto_tool_choice
        assert args.limit_mm_per_prompt == {"image": 8, "video": 1}


def test_legacy_sim_and_queue_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sim_ttft_ms: 100\nsim_tpot_ms: 10\nconcurrency: 2\nqueue_size: 5\n")
    s = load_settings(p, environ={"QVC_WEBUI_SIM_BATCH_CAPACITY": "4", "QVC_WEBUI_QUEUE_TIMEOUT_S": "600"})
    assert s.sim == {"ttft_ms": 100, "tpot_ms": 10, "batch_capacity": 4}
