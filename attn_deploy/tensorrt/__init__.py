"""TensorRT support: static compatibility check, engine building with the plugins, a runner.

Nothing here imports TensorRT at import time. The static check needs only ``onnx``; engine
building and the runner import ``tensorrt`` when used and raise
:class:`~attn_deploy.errors.RuntimeUnavailableError` saying what is missing.

    from attn_deploy.tensorrt import check_model, build_engine, TensorRTRunner
    check_model("cbam.onnx")                       # per-node verdicts for TensorRT 10.3 and 11.1
    build_engine("cca.onnx", precision="fp16")     # cached engine, plugins loaded
    with TensorRTRunner("cca.onnx") as r: r.infer({"x": x})
"""
from importlib import import_module

_EXPORTS = {
    "check_model": "attn_deploy.tensorrt.compat",
    "trt_check": "attn_deploy.tensorrt.compat",
    "CompatResult": "attn_deploy.tensorrt.compat",
    "build_engine": "attn_deploy.tensorrt.engine_builder",
    "EngineBuild": "attn_deploy.tensorrt.engine_builder",
    "TensorRTRunner": "attn_deploy.tensorrt.runner",
    "convert_to_fp16": "attn_deploy.tensorrt.fp16_model",
    "plugin_library_path": "attn_deploy.tensorrt.plugin_library",
    "tensorrt_availability": "attn_deploy.tensorrt.runtime_env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'attn_deploy.tensorrt' has no attribute {name!r}")
