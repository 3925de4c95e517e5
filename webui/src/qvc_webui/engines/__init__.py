"""Engine selection by configuration (heavy back ends are imported lazily)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Engine

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Settings


def create_engine(settings: "Settings") -> Engine:
    if settings.engine == "sim":
        from .sim import SimEngine

        return SimEngine(settings)
    if settings.engine == "transformers":
        from .transformers_engine import TransformersEngine

        return TransformersEngine(settings)
    if settings.engine == "vllm":
        from .vllm_engine import VllmEngine

        return VllmEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}")  # pragma: no cover - config validates


__all__ = ["Engine", "create_engine"]
