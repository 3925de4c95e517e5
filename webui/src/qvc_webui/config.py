"""Service configuration: YAML file + ``QVC_WEBUI_<KEY>`` environment overrides.

The file path comes from ``QVC_WEBUI_CONFIG`` (default ``/etc/qvc-webui/config.yaml``); a
missing file means defaults.  Every key below can be overridden by the environment variable
``QVC_WEBUI_<KEY upper-cased>`` (e.g. ``QVC_WEBUI_MAX_CONTEXT=4096``).  Unknown keys and bad
values fail fast with a message naming the key and where it came from.
"""
from __future__ import annotations

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


class ConfigError(Exception):
    """Raised for an unreadable or invalid configuration."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # model / engine
    model: str = Field(DEFAULT_MODEL, min_length=1, description="HF model id or local checkpoint dir")
    served_model_name: str | None = Field(None, description="name clients use; default derived from model")
    engine: Literal["transformers", "vllm", "sim"] = "transformers"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_context: int = Field(8192, ge=64, le=1_048_576)
    default_max_tokens: int = Field(512, ge=1)
    max_image_pixels: int = Field(1280 * 32 * 32, ge=1024, description="images are scaled down to this")
    max_input_image_pixels: int = Field(64_000_000, ge=1024, description="decompression-bomb guard")
    max_images_per_request: int = Field(8, ge=0, le=256)
    max_video_frames: int = Field(16, ge=1, le=512)
    trust_remote_code: bool = False
    warmup: bool = True
    # admission control
    concurrency: int = Field(2, ge=1, le=4096, description="generations running at once")
    queue_size: int = Field(32, ge=0, le=100_000, description="requests waiting for a slot; beyond -> 429")
    queue_timeout_s: float = Field(60.0, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    # HTTP
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    allow_remote_media: bool = Field(False, description="fetch http(s) image/video URLs (SSRF risk)")
    remote_media_timeout_s: float = Field(10.0, gt=0)
    remote_media_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)
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
    # sim engine (a timing emulator of a GPU engine; never the default)
    sim_ttft_ms: float = Field(150.0, ge=0)
    sim_tpot_ms: float = Field(15.0, ge=0)
    sim_batch_capacity: int = Field(256, ge=1)
    sim_output_tokens: int = Field(64, ge=1, description="tokens produced when max_tokens is unset")
    sim_load_s: float = Field(0.0, ge=0)
    # vllm engine
    vllm_gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    vllm_tensor_parallel_size: int = Field(1, ge=1)
    vllm_max_num_seqs: int = Field(64, ge=1)

    @field_validator("log_dir", "hf_endpoint", "served_model_name", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip() in ("", "none", "null") else v

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.default_max_tokens >= self.max_context:
            raise ValueError("default_max_tokens must be smaller than max_context")
        return self

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
            return self.device
        if self.engine == "sim":
            return "sim"
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except Exception:  # pragma: no cover - torch missing
            return "cpu"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = Settings.model_fields
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in fields:
            raise ConfigError(f"unknown configuration key in environment variable {name}")
        # YAML scalar parsing gives ints/floats/bools; strings stay strings.
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw
        if key in ("model", "served_model_name", "instance_id", "version_label", "host", "log_dir",
                   "hf_endpoint", "ui_title", "device", "control_dir"):
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


def apply_hf_environment(settings: Settings) -> None:
    """Export HF hub settings before transformers / huggingface_hub are imported."""
    if settings.hf_endpoint:
        os.environ["HF_ENDPOINT"] = settings.hf_endpoint
    if settings.hf_offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
