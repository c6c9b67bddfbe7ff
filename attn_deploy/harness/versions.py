"""Versions recorded with machine-readable results and golden outputs: the tool's, and the
library behind each runtime, so that a drift can be traced to the upgrade that caused it."""
from __future__ import annotations

import importlib.metadata
import platform
import sys

# the distribution behind each runtime name (attn_deploy.backends.RUNTIMES)
_DISTRIBUTIONS = {"torch-cpu": "torch", "torch-cuda": "torch", "ort-cpu": "onnxruntime",
                  "ort-cuda": "onnxruntime", "ort-tensorrt": "onnxruntime",
                  "onnx-reference": "onnx", "tensorrt": "tensorrt"}


# distributions that install a module under another project name
_ALTERNATES = {"onnxruntime": ("onnxruntime-gpu",), "tensorrt": ("tensorrt-cu12",
                                                                 "tensorrt-cu13")}


def _module_version(module: str) -> str | None:
    """The version of ``module``: its ``__version__`` when it is imported already, else the
    installed distribution's (read from metadata: importing torch only for its version would
    cost seconds); None when absent."""
    mod = sys.modules.get(module)
    if getattr(mod, "__version__", None):
        return str(mod.__version__)
    for dist in (module, *_ALTERNATES.get(module, ())):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def runtime_version(runtime: str) -> str | None:
    """``"onnxruntime 1.23.2"`` for ``ort-cpu``; None when the runtime's library is absent."""
    dist = _DISTRIBUTIONS.get(runtime)
    if dist is None:
        return None
    version = _module_version(dist)
    return f"{dist} {version}" if version else None


def tool_versions() -> dict[str, str | None]:
    """attn_deploy, Python and the libraries of every runtime."""
    from attn_deploy import __version__

    out: dict[str, str | None] = {"attn_deploy": __version__,
                                  "python": platform.python_version()}
    for dist in dict.fromkeys(_DISTRIBUTIONS.values()):
        out[dist] = _module_version(dist)
    return out
