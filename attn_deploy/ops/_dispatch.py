"""Choose between the compiled kernels and the pure-PyTorch references.

The compiled extension comes from :mod:`attn_deploy.ops._native` (``load_extension()`` returns
the module, built once and cached, or None when no compiler or build is available). The kernels
take contiguous float32/float16 tensors on the CPU or a CUDA device; everything else (float64 for
gradcheck, bfloat16, empty tensors, other devices) runs the reference.
"""
from __future__ import annotations

from types import ModuleType

import torch

NATIVE_DTYPES = (torch.float32, torch.float16)


def _native_module() -> ModuleType | None:
    try:
        from attn_deploy.ops import _native
    except ImportError:  # the loader is not part of this build
        return None
    return _native


def native_available() -> dict:
    """Which implementation the ops use: ``{"cpu": bool, "cuda": bool, ...}`` from the loader,
    or a dict saying that no compiled kernels are present (the references run)."""
    native = _native_module()
    if native is None:
        return {"cpu": False, "cuda": False,
                "reason": "attn_deploy.ops._native is missing; using the PyTorch references"}
    return native.native_available()


def native_extension(*tensors: torch.Tensor) -> ModuleType | None:
    """The compiled extension if it can run on ``tensors`` (same device and dtype), else None."""
    t = tensors[0]
    if t.dtype not in NATIVE_DTYPES or t.device.type not in ("cpu", "cuda"):
        return None
    if any(x.numel() == 0 for x in tensors):
        return None  # nothing to compute; the reference returns the empty result
    native = _native_module()
    ext = native.load_extension() if native is not None else None
    if ext is None:
        return None
    if t.device.type == "cuda" and not native.native_available().get("cuda", False):
        return None
    return ext
