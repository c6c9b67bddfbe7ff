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
    """(available, reason) for building and running engines: TensorRT, the CUDA runtime
    library and a CUDA device (no torch needed)."""
    trt, why = _import_tensorrt()
    if trt is None:
        return False, why
    from attn_deploy.backends.tensorrt.cuda_runtime import cuda_availability
    return cuda_availability()


def tensorrt_version(trt) -> str:
    return str(trt.__version__)


def tensorrt_major(trt) -> int:
    return int(re.match(r"\d+", tensorrt_version(trt)).group())


def gpu_identity(device: int = 0) -> str:
    """'NVIDIA H100 80GB HBM3 sm_90': part of the engine cache key (engines are GPU-specific)."""
    from attn_deploy.backends.tensorrt.cuda_runtime import cuda_runtime
    cuda = cuda_runtime()
    if cuda.device_count() == 0:
        raise RuntimeUnavailableError("no CUDA device")
    major, minor = cuda.capability(device)
    return f"{cuda.device_name(device)} sm_{major}{minor}"
