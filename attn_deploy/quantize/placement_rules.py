"""Where Q/DQ nodes may stand in a model meant for TensorRT's explicit quantization.

TensorRT (10.x weakly or strongly typed, 11.x strongly typed only) takes int8 from the
QuantizeLinear/DequantizeLinear pairs of the ONNX file and fuses a DQ into the layer that
consumes it (convolution, deconvolution, matrix multiply; pooling, residual Add and Concat
commute or fuse), and a Q into the layer that produces it. Its documented conventions, which
this module turns into checks on the file:

- symmetric quantization: zero points are 0 and signed (INT8, or FP8); there is no UINT8;
- scales are build-time constants, positive and finite;
- activations are quantized per tensor (a scalar scale); weights per tensor or per output
  channel, along the consumer's output-channel axis (Conv weight axis 0, ConvTranspose
  axis 1, MatMul ``B[K, N]`` the last axis, Gemm ``B`` axis 1, or 0 with ``transB``);
- every Q feeds DQs only, and a DQ is fed by a Q or a constant (weights);
- a DQ should reach, through data-movement ops (Reshape, Transpose, ...), a layer TensorRT runs
  in int8; elsewhere the pair is only rounding error and time.

attn_deploy's own rules on top: numerically sensitive ops (softmax, the exponent in attention,
normalisations, ...) and attn_deploy's custom nodes (plugins that take FP32/FP16 only) stay in
floating point: no Q/DQ directly on their inputs or outputs, none inside model-local functions.

Where the versions differ (``VERSION_RULES``, from the IQuantizeLayer/IDequantizeLayer
documentation in each release's NvInfer.h): TensorRT 10.x needs every scale to be a build-time
constant and, in strongly typed networks, of the type of the tensor quantized; 11.x accepts
computed scales (only zero points must be constant) and an FP32 scale for an FP16/BF16 tensor.
Types a version accepts at all (FP4 from 11.x) are in the support table, which ``trt-check``
checks per node. :func:`check_qdq_placement` is what ``trt-check``
runs on a quantized file; :func:`float_only_nodes` is what the quantizer keeps out of int8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from attn_deploy.op_contract import DOMAIN as PLUGIN_DOMAIN

# op type -> weight input index and its output-channel axis (None: decided per node)
WEIGHTED_OPS: dict[str, tuple[int, int | None]] = {
    "Conv": (1, 0), "ConvTranspose": (1, 1), "MatMul": (1, -1), "Gemm": (1, None),
}
# Layers TensorRT runs in int8 with their input DQs fused (weighted ones and those that
# commute with or fuse Q/DQ).
FUSING_OPS = frozenset(WEIGHTED_OPS) | {"Add", "AveragePool", "GlobalAveragePool", "MaxPool",
                                        "Concat"}
# Ops a Q/DQ pair moves through unchanged (TensorRT propagates Q/DQ across them).
DATA_MOVEMENT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten",
                               "Identity", "Slice", "Split"})
# Ops kept in floating point: their outputs span ranges a per-tensor int8 scale resolves
# badly (softmax probabilities, exponentials) or they divide by statistics of their input.
SENSITIVE_OPS = frozenset({
    "Softmax", "LogSoftmax", "Hardmax", "Exp", "Log", "ReduceLogSumExp", "Erf", "Sqrt",
    "Reciprocal", "Pow", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
    "BatchNormalization", "RMSNormalization", "LpNormalization", "MeanVarianceNormalization",
})
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_SIGNED = {onnx.TensorProto.INT8, onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.INT4}


@dataclass(frozen=True)
class VersionRules:
    """What a TensorRT release requires of Q/DQ scales."""

    scale_constant: bool  # every scale a build-time constant (else only zero points)
    scale_type_matches_input: str  # "always", or "half": only FP16/BF16 scales must match


VERSION_RULES = {10: VersionRules(True, "always"), 11: VersionRules(False, "half")}


def version_rules(version: str) -> VersionRules:
    """The rules of ``version``'s major release (the newest known for later ones)."""
    major = int(version.split(".")[0])
    known = [m for m in VERSION_RULES if m <= major]
    return VERSION_RULES[max(known)] if known else VERSION_RULES[min(VERSION_RULES)]


@dataclass(frozen=True)
class PlacementIssue:
    """One Q/DQ placement TensorRT cannot fuse or attn_deploy's rules forbid."""

    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"{self.node} [{self.op}]: {self.reason}"


def _check_version(version: str) -> None:
    from attn_deploy.trt_check.support_table import table_versions
    from attn_deploy.errors import AttnDeployError

    if version not in table_versions():
        raise AttnDeployError(f"TensorRT version {version!r}: expected one of "
                              f"{table_versions()}")


class _Graph:
    """Producers, consumers and constants of a graph's tensors."""

    def __init__(self, graph: onnx.GraphProto, rules: VersionRules,
                 types: dict[str, int] | None = None):
        self.rules, self.types = rules, types or {}
        self.nodes = list(graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.constants = {t.name: t for t in graph.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                value = next((a.t for a in n.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[n.output[0]] = value

    def source(self, tensor: str) -> onnx.NodeProto | None:
        """The node that computes ``tensor``, looking back through data-movement ops."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in DATA_MOVEMENT_OPS and node.input:
            node = self.producer.get(node.input[0])
        return node

    def sinks(self, tensor: str) -> list[onnx.NodeProto]:
        """The nodes that use ``tensor``, looking forward through data-movement ops."""
        out, todo, seen = [], [tensor], set()
        while todo:
            t = todo.pop()
            for n in self.consumers.get(t, []):
                if id(n) in seen:
                    continue
                seen.add(id(n))
                if n.op_type in DATA_MOVEMENT_OPS and n.input and n.input[0] == t:
                    todo.extend(o for o in n.output if o)
                else:
                    out.append(n)
        return out

    def type_of(self, name: str) -> int | None:
        t = self.constants.get(name)
        return t.data_type if t is not None else self.types.get(name)

    def array(self, name: str) -> np.ndarray | None:
        t = self.constants.get(name)
        return None if t is None else numpy_helper.to_array(t)


def _name(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0] if node.output else ''})"


def _is_float_keeper(node: onnx.NodeProto | None) -> str | None:
    """Why ``node``'s output or inputs must stay floating point, or None."""
    if node is None:
        return None
    if node.domain == PLUGIN_DOMAIN:
        return f"attn_deploy custom node {node.op_type} (its plugin takes FP32/FP16 only)"
    if node.domain in ("", "ai.onnx") and node.op_type in SENSITIVE_OPS:
        return f"numerically sensitive {node.op_type}"
    return None


def _value_types(proto: onnx.ModelProto) -> dict[str, int]:
    """Element types of the main graph's values (ONNX shape inference; partial when it cannot
    go past a node)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # types stay unknown; the type rule is then not applied
        inferred = proto
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type
            for v in list(g.input) + list(g.output) + list(g.value_info)
            if v.type.tensor_type.elem_type}


def float_only_nodes(proto: onnx.ModelProto) -> dict[str, str]:
    """Weighted nodes of the main graph that must stay floating point, with the reason: one of
    their activation inputs comes (through data-movement ops) from a sensitive op or a custom
    node, so quantizing them would put a Q right after that node. Node name -> reason."""
    g = _Graph(proto.graph, VERSION_RULES[max(VERSION_RULES)])
    keep = {}
    for node in g.nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in WEIGHTED_OPS:
            continue
        for tensor in node.input:
            if not tensor or tensor in g.constants:
                continue
            src = g.source(tensor)
            why = _is_float_keeper(src)
            if why:
                keep[node.name] = f"its input {tensor!r} comes from {why} {_name(src)!r}"
                break
    return keep


def _weight_axis(node: onnx.NodeProto, rank: int) -> int | None:
    slot, axis = WEIGHTED_OPS[node.op_type]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = 0 if trans_b else 1
    return None if axis is None else axis % max(rank, 1)


def _zero_point_type(node: onnx.NodeProto, g: _Graph) -> int:
    if len(node.input) > 2 and node.input[2]:
        t = g.constants.get(node.input[2])
        return t.data_type if t is not None else onnx.TensorProto.UNDEFINED
    out = next((a.i for a in node.attribute if a.name == "output_dtype"), 0)
    return out or onnx.TensorProto.UINT8  # ONNX's default without a zero point


def _check_scale(node: onnx.NodeProto, g: _Graph,
                 issues: list[PlacementIssue]) -> np.ndarray | None:
    scale = g.array(node.input[1]) if len(node.input) > 1 else None
    _check_scale_type(node, g, issues)
    if scale is None:
        if g.rules.scale_constant:
            issues.append(PlacementIssue(_name(node), node.op_type, f"scale {node.input[1]!r} "
                                         "must be a build-time constant (an initializer)"))
        return None
    s = scale.astype(np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        issues.append(PlacementIssue(_name(node), node.op_type,
                                     f"scale must be positive and finite, got min {s.min():.3g}"))
    zp = g.array(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if zp is not None and np.any(zp.astype(np.float64) != 0):
        issues.append(PlacementIssue(_name(node), node.op_type,
                                     "zero point must be 0 (TensorRT quantizes symmetrically)"))
    return scale


def _check_scale_type(node: onnx.NodeProto, g: _Graph, issues: list[PlacementIssue]) -> None:
    """Strongly typed networks: the scale's type against the float tensor's (Q's input, DQ's
    output)."""
    scale_t = g.type_of(node.input[1]) if len(node.input) > 1 else None
    tensor_t = g.type_of(node.input[0] if node.op_type == "QuantizeLinear" else node.output[0])
    if not scale_t or not tensor_t or scale_t == tensor_t:
        return
    half = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
    if g.rules.scale_type_matches_input == "always" or scale_t in half:
        name = onnx.TensorProto.DataType.Name
        issues.append(PlacementIssue(_name(node), node.op_type, f"scale type {name(scale_t)} "
                                     f"differs from the {name(tensor_t)} tensor it scales"))


def _check_q(node, g: _Graph, issues: list[PlacementIssue]) -> None:
    name = _name(node)
    if _zero_point_type(node, g) not in _SIGNED:
        t = onnx.TensorProto.DataType.Name(_zero_point_type(node, g))
        issues.append(PlacementIssue(name, node.op_type, f"quantizes to {t}; TensorRT takes "
                                     "signed INT8 (or FP8) with zero point 0"))
    scale = _check_scale(node, g, issues)
    if node.input[0] not in g.constants and scale is not None and scale.size != 1:
        issues.append(PlacementIssue(name, node.op_type, f"activation {node.input[0]!r} "
                                     f"quantized with {scale.size} scales; TensorRT quantizes "
                                     "activations per tensor"))
    others = [n for n in g.consumers.get(node.output[0], []) if n.op_type != "DequantizeLinear"]
    if others:
        issues.append(PlacementIssue(name, node.op_type, "its output feeds "
                                     f"{sorted({n.op_type for n in others})}; TensorRT needs "
                                     "every QuantizeLinear followed by DequantizeLinear"))
    why = _is_float_keeper(g.source(node.input[0]))
    if why:
        issues.append(PlacementIssue(name, node.op_type, f"quantizes the output of {why}, "
                                     "which stays floating point"))


def _check_dq(node, g: _Graph, issues: list[PlacementIssue]) -> None:
    name = _name(node)
    scale = _check_scale(node, g, issues)
    src = g.producer.get(node.input[0])
    is_weight = node.input[0] in g.constants
    if not is_weight and (src is None or src.op_type != "QuantizeLinear"):
        issues.append(PlacementIssue(name, node.op_type, f"input {node.input[0]!r} comes from "
                                     f"{src.op_type if src else 'a graph input'}; TensorRT "
                                     "needs a QuantizeLinear or a constant before it"))
    sinks = g.sinks(node.output[0])
    for sink in sinks:
        why = _is_float_keeper(sink)
        if why:
            issues.append(PlacementIssue(name, node.op_type, f"feeds {why} {_name(sink)!r}, "
                                         "which stays floating point"))
        elif sink.op_type not in FUSING_OPS:
            fusing = ", ".join(sorted(FUSING_OPS))
            issues.append(PlacementIssue(name, node.op_type, f"feeds {sink.op_type} "
                                         f"{_name(sink)!r}, which TensorRT does not run in "
                                         f"int8 (it fuses DQ into {fusing})"))
    if scale is None or scale.size == 1:
        return
    if not is_weight:
        issues.append(PlacementIssue(name, node.op_type, f"activation dequantized with "
                                     f"{scale.size} scales; TensorRT quantizes activations per "
                                     "tensor"))
        return
    weight = g.array(node.input[0])
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % max(weight.ndim, 1)
    if weight.shape[axis] != scale.size:
        issues.append(PlacementIssue(name, node.op_type, f"{scale.size} scales along axis {axis} "
                                     f"of a weight of shape {list(weight.shape)}"))
    for sink in sinks:
        if sink.op_type not in WEIGHTED_OPS or len(sink.input) < 2:
            continue
        want = _weight_axis(sink, weight.ndim)
        if want is not None and sink.input[1] in node.output and axis != want:
            issues.append(PlacementIssue(name, node.op_type, f"per-channel axis {axis}; "
                                         f"{sink.op_type} {_name(sink)!r} needs its output-channel "
                                         f"axis {want}"))


def check_qdq_placement(proto: onnx.ModelProto, tensorrt: str | None = None
                        ) -> list[PlacementIssue]:
    """Every Q/DQ placement in ``proto`` that TensorRT ``tensorrt`` (default: the newest in the
    support table) cannot fuse as int8 or that attn_deploy's rules forbid. Empty: fine (also
    for a model without Q/DQ)."""
    if tensorrt is None:
        from attn_deploy.trt_check.support_table import table_versions
        tensorrt = table_versions()[-1]
    _check_version(tensorrt)
    issues: list[PlacementIssue] = []
    for f in proto.functions:
        for n in f.node:
            if n.op_type in _QDQ:
                issues.append(PlacementIssue(_name(n), n.op_type, f"inside model-local function "
                                             f"{f.domain}::{f.name}; custom nodes and their "
                                             "bodies stay floating point"))
    g = _Graph(proto.graph, version_rules(tensorrt), _value_types(proto))
    for node in g.nodes:
        if node.domain not in ("", "ai.onnx"):
            if node.domain == PLUGIN_DOMAIN:
                for t in node.input:
                    src = g.source(t) if t else None
                    if src is not None and src.op_type == "DequantizeLinear":
                        issues.append(PlacementIssue(_name(node), node.op_type, f"input {t!r} "
                                                     "is dequantized int8; the plugin takes "
                                                     "FP32/FP16 computed in floating point"))
            continue
        if node.op_type == "QuantizeLinear":
            _check_q(node, g, issues)
        elif node.op_type == "DequantizeLinear":
            _check_dq(node, g, issues)
    return issues


def qdq_counts(proto: onnx.ModelProto) -> dict[str, int]:
    """Q and DQ nodes in the main graph, and how many DQs dequantize constant weights."""
    g = _Graph(proto.graph, VERSION_RULES[max(VERSION_RULES)])
    q = [n for n in g.nodes if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.nodes if n.op_type == "DequantizeLinear"]
    return {"quantize": len(q), "dequantize": len(dq),
            "weights": sum(n.input[0] in g.constants for n in dq)}
