"""The TensorRT backend: engine building with the plugins, the engine cache, profiles, a runner.

Nothing here imports TensorRT at import time; engine building and the runner import ``tensorrt``
when used and raise :class:`~attn_deploy.errors.RuntimeUnavailableError` saying what is missing.
The static check, which needs no TensorRT, is :mod:`attn_deploy.trt_check`.

    from attn_deploy.backends.tensorrt import build_engine, TensorRTRunner
    build_engine("cca.onnx", precision="fp16")     # cached engine, plugins loaded
    with TensorRTRunner("cca.onnx") as r: r.infer({"x": x})
"""
from importlib import import_module

_EXPORTS = {
    "build_engine": "attn_deploy.backends.tensorrt.engine_builder",
    "EngineBuild": "attn_deploy.backends.tensorrt.engine_builder",
    "TensorRTRunner": "attn_deploy.backends.tensorrt.runner",
    "convert_to_fp16": "attn_deploy.backends.tensorrt.fp16_model",
    "plugin_library_path": "attn_deploy.backends.tensorrt.plugin_library",
    "tensorrt_availability": "attn_deploy.backends.tensorrt.runtime_env",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'attn_deploy.backends.tensorrt' has no attribute {name!r}")
