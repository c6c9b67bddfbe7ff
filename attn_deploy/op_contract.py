"""The custom-op contract: the one Python home of what ``plugins/core/plugin_fields.h`` and the
per-op rules (``plugins/core/carafe_rules.h``, ``criss_cross_rules.h``) state in C++.

Each attn_deploy op is the same thing wherever it appears: an ONNX node ``attn_deploy::<name>``
(domain version 1) with these named inputs and int attributes; a TensorRT plugin of that name,
version "1", namespace "attn_deploy", whose fields are exactly those attributes; and one
attribute validator shared by the PyTorch op (``attn_deploy.ops``), the exporter and the static
TensorRT check (``attn_deploy.trt_check``). Nothing here imports torch or onnx.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Mapping

DOMAIN = "attn_deploy"          # ONNX domain of the custom nodes and of their local functions
DOMAIN_VERSION = 1              # the opset version of that domain
PLUGIN_VERSION = "1"            # kPluginVersion in plugins/core/plugin_fields.h
PLUGIN_NAMESPACE = "attn_deploy"  # kPluginNamespace in plugins/core/plugin_fields.h


@dataclass(frozen=True)
class OpContract:
    """One custom op: ``name`` is the ONNX op type and the TensorRT plugin name."""

    name: str
    inputs: tuple[str, ...]
    int_attributes: tuple[str, ...]
    # attribute values (those given) -> what is wrong with them, one message per bad value
    attribute_errors: Callable[[Mapping[str, object]], list[str]]


def _int_error(name: str, value, minimum: int, odd: bool = False) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum \
            or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        return [f"{name} must be {kind} >= {minimum}, got {value!r}"]
    return []


def carafe_attribute_errors(attrs: Mapping[str, object]) -> list[str]:
    """kernel_size odd >= 1, group_size >= 1, scale_factor >= 1 (validateCarafe in C++)."""
    rules = (("kernel_size", 1, True), ("group_size", 1, False), ("scale_factor", 1, False))
    return [e for name, minimum, odd in rules if name in attrs
            for e in _int_error(name, attrs[name], minimum, odd)]


CARAFE = OpContract("CARAFE", ("features", "masks"),
                    ("kernel_size", "group_size", "scale_factor"), carafe_attribute_errors)
CRISS_CROSS_ATTENTION = OpContract("CrissCrossAttention", ("query", "key", "value"), (),
                                   lambda attrs: [])

OPS: dict[str, OpContract] = {op.name: op for op in (CARAFE, CRISS_CROSS_ATTENTION)}
