"""Instance configuration: YAML file + ``QVC_WEBUI_<KEY>`` environment overrides.

The file path comes from ``QVC_WEBUI_CONFIG`` (default ``/etc/qvc-webui/config.yaml``); a
missing file means defaults.  Every key below can be overridden by the environment variable
``QVC_WEBUI_<KEY upper-cased>`` (e.g. ``QVC_WEBUI_MAX_MODEL_LEN=4096``).  Unknown keys and bad
values fail fast with a message naming the key and where it came from.

The engine is vLLM (its own OpenAI-compatible server); ``vllm_args()`` turns these settings
into vLLM's command-line arguments.  ``engine: sim`` runs the GPU timing emulator, a test
double that lives in the test tree (``webui/sim``), never in the product's default path.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import __version__

DEFAULT_CONFIG_PATH = "/etc/qvc-webui/config.yaml"
ENV_PREFIX = "QVC_WEBUI_"
DEFAULT_MODEL = "Qwen/Qwen3-VL-4B-Instruct"
# keys of the pre-vLLM app: accepted and ignored (vLLM schedules and queues itself)
DEPRECATED_KEYS = ("queue_size", "queue_timeout_s", "concurrency")
_STRING_KEYS = ("model", "served_model_name", "instance_id", "version_label", "host", "log_dir",
                "hf_endpoint", "ui_title", "device", "control_dir", "tool_call_parser")


class ConfigError(Exception):
    """Raised for an unreadable or invalid configuration."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # model / engine
    model: str = Field(DEFAULT_MODEL, min_length=1, description="HF model id or local checkpoint dir")
    served_model_name: str | None = Field(None, description="name clients use; default derived from model")
    engine: Literal["vllm", "sim"] = "vllm"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_model_len: int = Field(8192, ge=256, le=1_048_576, description="context window (prompt + output)")
    max_num_seqs: int = Field(64, ge=1, le=4096, description="sequences one engine step batches")
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="CPU engine: KV cache size (VLLM_CPU_KVCACHE_SPACE)")
    enforce_eager: bool = Field(False, description="no CUDA graphs / torch.compile (always on for CPU)")
    # multimodal limits (per request) and image size cap
    limit_images: int = Field(8, ge=0, le=256, description="images per request (vLLM limit_mm_per_prompt)")
    limit_videos: int = Field(1, ge=0, le=16, description="videos per request")
    max_pixels: int = Field(1280 * 32 * 32, ge=32 * 32, description="images are resized to at most this")
    allow_remote_media: bool = Field(False, description="fetch http(s) image/video URLs (SSRF risk)")
    # OpenAI features
    tool_call_parser: str = Field("hermes", description="vLLM tool parser ('' = tool calling off)")
    enable_prefix_caching: bool = True
    extra_vllm_args: list[str] = Field(default_factory=list, description="appended to vLLM's arguments")
    trust_remote_code: bool = False
    warmup: bool = True
    # knobs of the sim test double (webui/sim/qvc_sim.py: ttft_ms, tpot_ms, batch_capacity,
    # output_tokens, load_s); ignored by the vLLM engine
    sim: dict[str, float] = Field(default_factory=dict)
    # HTTP
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    ui_enabled: bool = True
    ui_title: str = "Qwen3-VL"
    # identity / ops
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    version_label: str = __version__
    control_dir: str = Field("/run/qvc-control", min_length=1,
                             description="drain contract: the file 'drain' here makes the instance refuse new work")
    log_dir: str | None = "/var/log/qvc-webui"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_queue_size: int = Field(10_000, ge=1)
    # Hugging Face hub
    hf_endpoint: str | None = None
    hf_offline: bool = False

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """``sim_<knob>`` (old spelling) -> ``sim: {knob}``; drop DEPRECATED_KEYS."""
        if isinstance(data, dict):
            data = dict(data)
            for key in [k for k in data if isinstance(k, str) and k.startswith("sim_")]:
                data["sim"] = {**(data.get("sim") or {}), key[4:]: data.pop(key)}
            for key in DEPRECATED_KEYS:
                data.pop(key, None)
        return data

    @field_validator("log_dir", "hf_endpoint", "served_model_name", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip() in ("", "none", "null") else v

    @field_validator("extra_vllm_args", mode="before")
    @classmethod
    def _split_args(cls, v: Any) -> Any:
        if isinstance(v, str):
            import shlex

            return shlex.split(v)
        return v

    @property
    def model_name(self) -> str:
        """Name reported by /v1/models and accepted in requests."""
        if self.served_model_name:
            return self.served_model_name
        if self.model.startswith(("/", ".", "~")):
            return Path(self.model).name or self.model
        return self.model

    @property
    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device.split(":")[0]
        try:
            from vllm.platforms import current_platform

            return "cpu" if current_platform.is_cpu() else "cuda"
        except Exception:  # pragma: no cover - vllm missing
            return "cpu"

    def vllm_args(self, device: str | None = None) -> list[str]:
        """vLLM OpenAI server arguments for these settings (``device``: cpu or cuda)."""
        device = device or self.resolved_device
        mm_limits = {"image": self.limit_images, "video": self.limit_videos}
        args = ["--model", self.model, "--served-model-name", self.model_name,
                "--max-model-len", str(self.max_model_len), "--max-num-seqs", str(self.max_num_seqs),
                "--dtype", ("float32" if device == "cpu" and self.dtype == "auto" else self.dtype),
                "--limit-mm-per-prompt", json.dumps(mm_limits),
                "--mm-processor-kwargs", json.dumps({"max_pixels": self.max_pixels}),
                "--generation-config", "vllm",
                "--disable-uvicorn-access-log"]
        if self.tool_call_parser:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        args.append("--enable-prefix-caching" if self.enable_prefix_caching else "--no-enable-prefix-caching")
        if self.trust_remote_code:
            args.append("--trust-remote-code")
        if not self.allow_remote_media:
            # only data: URLs; an http(s) URL is refused with 400 instead of being fetched (SSRF)
            args += ["--allowed-media-domains", "media.invalid"]
        if device == "cpu" or self.enforce_eager:
            args.append("--enforce-eager")
        if device != "cpu":
            args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization),
                     "--tensor-parallel-size", str(self.tensor_parallel_size)]
        return args + list(self.extra_vllm_args)


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = Settings.model_fields
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in fields and not key.startswith("sim_") and key not in DEPRECATED_KEYS:
            raise ConfigError(f"unknown configuration key in environment variable {name}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if (isinstance(value, dict) and key != "sim") or (isinstance(value, list) and key != "extra_vllm_args"):
            value = raw
        if key in _STRING_KEYS:
            value = raw  # always strings (e.g. a version label "1.10" must not become 1.1)
        out[key] = value
    return out


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    cfg_path = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            loaded = yaml.safe_load(cfg_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{cfg_path}: cannot read YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{cfg_path}: top level must be a mapping, got {type(loaded).__name__}")
        data.update({str(k): v for k, v in loaded.items()})
    env = _env_overrides(environ)
    data.update(env)
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(config)"
            src = f"env {ENV_PREFIX}{key.upper()}" if key in env else str(cfg_path)
            lines.append(f"  {key}: {err['msg']} (from {src}, got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def apply_environment(settings: Settings) -> None:
    """Export HF hub / vLLM settings before vLLM, transformers or huggingface_hub are imported."""
    if settings.hf_endpoint:
        os.environ["HF_ENDPOINT"] = settings.hf_endpoint
    if settings.hf_offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kvcache_space_gib))
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    # vLLM's loggers propagate to the root logger, whose handlers write JSON lines
    # (logging_setup); vLLM's child processes then print only warnings and errors (stderr)
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    os.environ.setdefault("DO_NOT_TRACK", "1")
