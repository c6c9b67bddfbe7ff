"""Detecting TensorRT and the GPU, once, without making anything fail when they are absent."""
from __future__ import annotations

import functools
import re

from attn_deploy.errors import RuntimeUnavailableError


@functools.lru_cache(maxsize=1)
def _import_tensorrt():
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a stub package that fails on import
        return None, f"the tensorrt Python package is not importable ({type(exc).__name__}: {exc})"
    if not hasattr(trt, "Builder"):
        return None, "the installed tensorrt package is a stub without the TensorRT libraries"
    return trt, ""


def import_tensorrt():
    """The tensorrt module; RuntimeUnavailableError saying why when it cannot be used."""
    trt, why = _import_tensorrt()
    if trt is None:
        raise RuntimeUnavailableError(f"TensorRT is unavailable: {why}")
    return trt


def tensorrt_availability() -> tuple[bool, str]:
    """(available, reason) for building and running engines: TensorRT and a CUDA device."""
    trt, why = _import_tensorrt()
    if trt is None:
        return False, why
    try:
        import torch
    except ImportError as exc:
        return False, f"torch is needed for device buffers ({exc})"
    if not torch.cuda.is_available():
        return False, "no CUDA device (or a CPU build of torch)"
    return True, ""


def tensorrt_version(trt) -> str:
    return str(trt.__version__)


def tensorrt_major(trt) -> int:
    return int(re.match(r"\d+", tensorrt_version(trt)).group())


def gpu_identity(device: int = 0) -> str:
    """'NVIDIA H100 80GB HBM3 sm_90': part of the engine cache key (engines are GPU-specific)."""
    import torch
    if not torch.cuda.is_available():
        raise RuntimeUnavailableError("no CUDA device (or a CPU build of torch)")
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"
