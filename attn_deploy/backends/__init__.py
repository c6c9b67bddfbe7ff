"""Runtimes behind one runner interface, and which of them this machine has.

Runtime names (used by the CLI's ``--runtimes`` and the reports):
``torch-cpu``, ``torch-cuda`` (eager PyTorch), ``ort-cpu``, ``ort-cuda``, ``ort-tensorrt``
(ONNX Runtime and its execution providers), ``onnx-reference`` (``onnx.reference``) and
``tensorrt`` (attn_deploy's TensorRT runner). A runtime that is not installed is reported as
unavailable with the reason; it is never counted as a pass or a failure.
"""
from __future__ import annotations

from pathlib import Path

from attn_deploy.backends.base import Runner, TensorMeta, check_feed
from attn_deploy.backends.onnx_reference_runner import OnnxReferenceRunner
from attn_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from attn_deploy.errors import AttnDeployError

ONNX_RUNTIMES = ("ort-cpu", "ort-cuda", "ort-tensorrt", "onnx-reference", "tensorrt")
TORCH_RUNTIMES = ("torch-cpu", "torch-cuda")
RUNTIMES = TORCH_RUNTIMES + ONNX_RUNTIMES

__all__ = ["ONNX_RUNTIMES", "RUNTIMES", "OnnxReferenceRunner", "OnnxRuntimeRunner", "Runner",
           "TensorMeta", "TorchRunner", "availability", "check_feed", "onnx_runner"]


def __getattr__(name):
    # The PyTorch runner needs torch; the runtime side (ONNX files, engines) must not.
    if name == "TorchRunner":
        from attn_deploy.backends.torch_runner import TorchRunner
        return TorchRunner
    raise AttributeError(f"module 'attn_deploy.backends' has no attribute {name!r}")


def _tensorrt_runner_class():
    # optional: TensorRT may be absent
    from attn_deploy.backends.tensorrt.runner import TensorRTRunner
    return TensorRTRunner


def onnx_runner(runtime: str, path: str | Path, **options) -> Runner:
    """A runner for an ONNX file on ``runtime`` (one of ONNX_RUNTIMES)."""
    if runtime == "onnx-reference":
        return OnnxReferenceRunner(path)
    if runtime.startswith("ort-"):
        return OnnxRuntimeRunner(path, provider=runtime[4:], **options)
    if runtime == "tensorrt":
        return _tensorrt_runner_class()(path, **options)
    raise AttnDeployError(f"runtime {runtime!r} does not run ONNX files; "
                          f"valid: {', '.join(ONNX_RUNTIMES)}")


def availability(runtime: str) -> tuple[bool, str]:
    """(available, reason) for a runtime name, without building anything heavy."""
    if runtime not in RUNTIMES:
        raise AttnDeployError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
    if runtime in TORCH_RUNTIMES:
        try:
            import torch
        except ImportError as exc:
            return False, f"torch is not installed ({exc}); pip install \"attn_deploy[export]\""
        if runtime == "torch-cuda" and not torch.cuda.is_available():
            return False, "no CUDA device (or a CPU build of torch)"
        return True, ""
    if runtime == "onnx-reference":
        return True, ""
    if runtime == "tensorrt":
        try:
            cls = _tensorrt_runner_class()
        except ImportError as exc:
            return False, f"TensorRT support not importable ({exc})"
        return cls.runtime_availability()
    return OnnxRuntimeRunner("unused.onnx", provider=runtime[4:]).availability()
