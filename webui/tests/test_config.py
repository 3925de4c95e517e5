import pytest

from qvc_webui.config import DEFAULT_MODEL, ConfigError, load_settings


def test_missing_file_gives_defaults(tmp_path):
    s = load_settings(tmp_path / "nope.yaml", environ={})
    assert s.model == DEFAULT_MODEL and s.engine == "transformers" and s.port == 8080
    assert s.allow_remote_media is False  # SSRF: off by default
    assert s.model_name == DEFAULT_MODEL


def test_yaml_and_env_override(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("engine: sim\nport: 9000\nmodel: /models/Qwen3-VL-4B-Instruct\nversion_label: '1.10'\n")
    env = {"QVC_WEBUI_CONFIG": str(p), "QVC_WEBUI_PORT": "9100", "QVC_WEBUI_MAX_CONTEXT": "4096",
           "QVC_WEBUI_INSTANCE_ID": "gpu-a", "QVC_WEBUI_VERSION_LABEL": "2.10", "QVC_WEBUI_HF_OFFLINE": "true"}
    s = load_settings(environ=env)
    assert (s.engine, s.port, s.max_context, s.instance_id) == ("sim", 9100, 4096, "gpu-a")
    assert s.version_label == "2.10" and s.hf_offline is True
    assert s.model_name == "Qwen3-VL-4B-Instruct"


@pytest.mark.parametrize("content,needle", [
    ("port: 99999\n", "port"),
    ("engine: tensorrt\n", "engine"),
    ("bogus_key: 1\n", "bogus_key"),
    ("- a\n- b\n", "mapping"),
    ("port: [\n", "YAML"),
])
def test_bad_file_clear_errors(tmp_path, content, needle):
    p = tmp_path / "c.yaml"
    p.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        load_settings(p, environ={})


def test_bad_env_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="QVC_WEBUI_CONCURRENCY"):
        load_settings(tmp_path / "x", environ={"QVC_WEBUI_CONCURRENCY": "zero"})
    with pytest.raises(ConfigError, match="QVC_WEBUI_NOPE"):
        load_settings(tmp_path / "x", environ={"QVC_WEBUI_NOPE": "1"})


def test_cli_check_config(tmp_path, capsys, monkeypatch):
    from qvc_webui.__main__ import main

    p = tmp_path / "c.yaml"
    p.write_text("engine: sim\n")
    assert main(["--config", str(p), "--check-config"]) == 0
    assert '"engine": "sim"' in capsys.readouterr().out
    p.write_text("port: -1\n")
    assert main(["--config", str(p), "--check-config"]) == 2
    assert "port" in capsys.readouterr().err
