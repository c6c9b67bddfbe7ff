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
from typing import Callable, Mapping, Optional, Sequence

DOMAIN = "attn_deploy"          # ONNX domain of the custom nodes and of their local functions
DOMAIN_VERSION = 1              # the opset version of that domain
PLUGIN_VERSION = "1"            # kPluginVersion in plugins/core/plugin_fields.h
PLUGIN_NAMESPACE = "attn_deploy"  # kPluginNamespace in plugins/core/plugin_fields.h


# Size limits of the ops, one set for every path that runs them: the PyTorch op's argument check
# (attn_deploy.ops), the static TensorRT check (attn_deploy.trt_check), the TensorRT plugin core
# and the native kernels (all three read plugins/kernels/op_limits.h, which a test compares with
# these numbers).
MAX_KERNEL_SIZE = 255    # CARAFE kernel_size (odd)
MAX_SCALE_FACTOR = 64    # CARAFE scale_factor
PLANE_LIMIT = 2 ** 27    # one channel plane (CARAFE's output H*s*W*s, criss-cross H*W) is below
INT32_MAX = 2 ** 31 - 1  # the kernels index with int32: every dim, CARAFE's mask channels

Shape = Optional[Sequence[Optional[int]]]  # a tensor shape; None: unknown shape or dim


@dataclass(frozen=True)
class OpContract:
    """One custom op: ``name`` is the ONNX op type and the TensorRT plugin name."""

    name: str
    inputs: tuple[str, ...]
    int_attributes: tuple[str, ...]
    # attribute values (those given) -> what is wrong with them, one message per bad value
    attribute_errors: Callable[[Mapping[str, object]], list[str]]
    # (input shapes in `inputs` order, valid attribute values) -> the size limits they break;
    # unknown shapes and dims are skipped
    shape_errors: Callable[[Sequence[Shape], Mapping[str, int]], list[str]]


def _int_error(name: str, value, minimum: int, maximum: int | None = None,
               odd: bool = False) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum \
            or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        return [f"{name} must be {kind} >= {minimum}, got {value!r}"]
    if maximum is not None and value > maximum:
        return [f"{name} must be at most {maximum} (the ops' size limit), got {value!r}"]
    return []


def carafe_attribute_errors(attrs: Mapping[str, object]) -> list[str]:
    """kernel_size odd in [1, 255], group_size >= 1, scale_factor in [1, 64], and
    group_size * kernel_size^2 mask channels within int32 (validateCarafe in C++)."""
    rules = (("kernel_size", MAX_KERNEL_SIZE, True), ("group_size", None, False),
             ("scale_factor", MAX_SCALE_FACTOR, False))
    errors = [e for name, maximum, odd in rules if name in attrs
              for e in _int_error(name, attrs[name], 1, maximum, odd)]
    if not errors and "kernel_size" in attrs and "group_size" in attrs:
        g, k = int(attrs["group_size"]), int(attrs["kernel_size"])
        if g * k * k > INT32_MAX:
            errors.append(f"group_size * kernel_size^2 = {g} * {k}^2 = {g * k * k} mask channels "
                          f"does not fit in int32")
    return errors


def known_dims(shape) -> tuple:
    """A shape with only plain ints kept: symbolic dims (torch.SymInt while tracing for export)
    become None, so the limits are checked on what is known, without guards on dynamic dims."""
    return tuple(d if type(d) is int else None for d in shape)


def _dims_errors(name: str, shape: Shape) -> list[str]:
    if shape is None:
        return []
    big = [d for d in shape if d is not None and d > INT32_MAX]
    return [f"'{name}' {list(shape)}: every dim must fit in int32, got {big[0]}"] if big else []


def _plane_error(what: str, plane_dims: Sequence[int], plane: int, name: str,
                 shape: Shape) -> list[str]:
    if plane < PLANE_LIMIT:
        return []
    return [f"{what} = {'*'.join(map(str, plane_dims))} = {plane} must be below 2^27 (the ops' "
            f"limit per channel plane) for '{name}' {list(shape)}"]


def carafe_shape_errors(shapes: Sequence[Shape], attrs: Mapping[str, int]) -> list[str]:
    """Dims within int32; output plane H*s * W*s below 2^27 (checkCarafeInputs in C++)."""
    errors = [e for name, shape in zip(CARAFE_INPUTS, shapes) for e in _dims_errors(name, shape)]
    features = shapes[0] if shapes else None
    s = attrs.get("scale_factor")
    if features is None or len(features) != 4 or s is None or None in features[2:]:
        return errors
    h, w = features[2], features[3]
    return errors + _plane_error("output plane H*W*scale_factor^2", (h, w, f"{s}^2"),
                                 h * w * s * s, "features", features)


def criss_cross_shape_errors(shapes: Sequence[Shape], attrs: Mapping[str, int]) -> list[str]:
    """Dims within int32; H*W below 2^27 (checkCrissCrossInputs in C++)."""
    errors = [e for name, shape in zip(CRISS_CROSS_INPUTS, shapes)
              for e in _dims_errors(name, shape)]
    query = shapes[0] if shapes else None
    if query is None or len(query) != 4 or None in query[2:]:
        return errors
    return errors + _plane_error("H*W", query[2:], query[2] * query[3], "query", query)


CARAFE_INPUTS = ("features", "masks")
CRISS_CROSS_INPUTS = ("query", "key", "value")
CARAFE = OpContract("CARAFE", CARAFE_INPUTS, ("kernel_size", "group_size", "scale_factor"),
                    carafe_attribute_errors, carafe_shape_errors)
CRISS_CROSS_ATTENTION = OpContract("CrissCrossAttention", CRISS_CROSS_INPUTS, (),
                                   lambda attrs: [], criss_cross_shape_errors)

OPS: dict[str, OpContract] = {op.name: op for op in (CARAFE, CRISS_CROSS_ATTENTION)}
