"""float32 -> float16 conversion of an ONNX model, for strongly typed TensorRT networks.

TensorRT 11 builds every network strongly typed: a tensor's type is the one the ONNX file gives
it, and there is no FP16 builder flag any more. An fp16 engine therefore needs an fp16 model:
float32 initializers, graph inputs/outputs, Constant/ConstantOfShape values and float32 dtype
attributes (Cast ``to``, RandomNormal ``dtype``, ...) become float16, in the main graph, in
subgraphs and in model-local functions. Inputs the ONNX spec types as float32 whatever the data
type (Resize ``scales``, Upsample ``scales``) get a Cast back to float32 in front.

Values beyond float16's range are clipped to +-65504. Integer-valued float arithmetic (indices
computed in float) loses exactness above 2048; exported attention blocks compute indices in int64,
and the parity check of the engine shows any loss.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from attn_deploy.errors import AttnDeployError

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
_FP16_MAX = float(np.finfo(np.float16).max)
_FLOAT32_INPUTS = {"Resize": (2,), "Upsample": (1,)}
_FLOAT32_ONLY_OPS = {"Range", "NonMaxSuppression"}
_DTYPE_ATTRS = {"Cast": "to", "EyeLike": "dtype", "RandomNormal": "dtype",
                "RandomUniform": "dtype", "RandomNormalLike": "dtype",
                "RandomUniformLike": "dtype", "Bernoulli": "dtype"}


def _half_tensor(t: onnx.TensorProto) -> onnx.TensorProto:
    if t.data_type != FLOAT:
        return t
    array = numpy_helper.to_array(t)
    out = numpy_helper.from_array(np.clip(array, -_FP16_MAX, _FP16_MAX).astype(np.float16), t.name)
    return out


def _half_value_type(value: onnx.ValueInfoProto) -> None:
    if value.type.tensor_type.elem_type == FLOAT:
        value.type.tensor_type.elem_type = FLOAT16


def _cast(counter: list[int], source: str, to: int, target: str | None = None) -> onnx.NodeProto:
    counter[0] += 1
    target = target or f"{source}_fp32_{counter[0]}"
    return helper.make_node("Cast", [source], [target], to=to, name=f"fp16_model_cast_{counter[0]}")


def _convert_nodes(nodes, counter: list[int], types: dict[str, int]) -> list[onnx.NodeProto]:
    """Rewrite ``nodes`` in place where they produce float32; returns them with the Casts the
    float32-only inputs and ops need, in order. ``types``: the float32 model's value types."""
    out = []
    for node in nodes:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(_half_tensor(attr.t))
            elif attr.type == onnx.AttributeProto.GRAPH:
                _convert_graph(attr.g, counter, types)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _convert_graph(g, counter, types)
        if node.op_type == "Constant":
            for attr in list(node.attribute):
                if attr.name in ("value_float", "value_floats"):
                    values = np.asarray(helper.get_attribute_value(attr), np.float16)
                    node.attribute.remove(attr)
                    node.attribute.append(helper.make_attribute(
                        "value", numpy_helper.from_array(values, "")))
        dtype_attr = _DTYPE_ATTRS.get(node.op_type)
        for attr in node.attribute:
            if attr.name == dtype_attr and attr.i == FLOAT:
                attr.i = FLOAT16
        for index in _FLOAT32_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index]:
                out.append(_cast(counter, node.input[index], FLOAT))
                node.input[index] = out[-1].output[0]
        after = []
        if node.op_type in _FLOAT32_ONLY_OPS:
            for index, name in enumerate(node.input):
                if name and types.get(name) == FLOAT:
                    out.append(_cast(counter, name, FLOAT))
                    node.input[index] = out[-1].output[0]
            for index, name in enumerate(node.output):
                if name and types.get(name) == FLOAT:
                    node.output[index] = f"{name}_fp32_{counter[0] + 1}"
                    after.append(_cast(counter, node.output[index], FLOAT16, name))
        out.append(node)
        out.extend(after)
    return out


def _convert_graph(graph: onnx.GraphProto, counter: list[int], types: dict[str, int]) -> None:
    for i, init in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(_half_tensor(init))
    for value in list(graph.input) + list(graph.output):
        _half_value_type(value)
    del graph.value_info[:]  # re-derived by shape inference
    nodes = _convert_nodes(graph.node, counter, types)
    del graph.node[:]
    graph.node.extend(nodes)


def convert_to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``proto`` (see the module docstring); checked by ONNX's strict shape
    inference, so a conversion that breaks typing fails here, naming the node."""
    model = onnx.shape_inference.infer_shapes(proto)  # a copy, with the float32 value types
    types = _value_types(model.graph)
    counter = [0]
    _convert_graph(model.graph, counter, types)
    for f in model.functions:
        nodes = _convert_nodes(f.node, counter, {})
        del f.node[:]
        f.node.extend(nodes)
        if hasattr(f, "value_info"):
            del f.value_info[:]
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        raise AttnDeployError(f"float16 conversion produced an invalid model: {exc}") from exc
    return model


def _value_types(graph: onnx.GraphProto) -> dict[str, int]:
    types = {i.name: i.data_type for i in graph.initializer}
    for v in list(graph.input) + list(graph.value_info) + list(graph.output):
        types[v.name] = v.type.tensor_type.elem_type
    for node in graph.node:
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                types.update(_value_types(g))
    return types


def is_fp16_model(proto: onnx.ModelProto) -> bool:
    """Whether the model's float graph inputs are float16 (and none is float32)."""
    inits = {i.name for i in proto.graph.initializer}
    types = {v.type.tensor_type.elem_type for v in proto.graph.input if v.name not in inits}
    return FLOAT16 in types and FLOAT not in types
