"""The per-node rules of the static TensorRT check: the support table's check kinds, and the
attn_deploy plugin nodes (validated like the plugins' own creators validate their fields)."""
from __future__ import annotations

import numpy as np
import onnx

from attn_deploy.op_contract import CARAFE, OPS, PLUGIN_NAMESPACE, PLUGIN_VERSION
from attn_deploy.trt_check.graph_facts import GraphFacts

DOC_TYPE = {
    onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.DOUBLE: "DOUBLE",
    onnx.TensorProto.INT32: "INT32", onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.INT8: "INT8", onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.FLOAT8E4M3FN: "FP8",
    onnx.TensorProto.INT4: "INT4",
}
if hasattr(onnx.TensorProto, "FLOAT4E2M1"):
    DOC_TYPE[onnx.TensorProto.FLOAT4E2M1] = "FP4"


def doc_type(elem_type: int | None) -> str | None:
    if elem_type is None:
        return None
    return DOC_TYPE.get(elem_type, onnx.TensorProto.DataType.Name(elem_type))


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _decode(v):
    return v.decode() if isinstance(v, bytes) else v


def _input(node, i) -> str | None:
    return node.input[i] if i < len(node.input) and node.input[i] else None


def evaluate_check(check: dict, node: onnx.NodeProto, facts: GraphFacts) -> str | None:
    """None if ``node`` passes ``check`` (or it cannot be decided statically), else the reason."""
    kind = check["kind"]
    what = check.get("what", f"input {check.get('input')}")
    if kind in ("input_constant", "input_false", "input_zero", "input_below"):
        name = _input(node, check["input"])
        if name is None:
            return None
        if name not in facts.constants:
            return f"`{what}` (input {check['input']}, {name!r}) must be a build-time constant"
        value = facts.constants[name]
        if value is None:
            return None
        if kind == "input_false" and bool(np.any(value)):
            return f"`{what}` must be False, got {value.tolist()}"
        if kind == "input_zero" and bool(np.any(value != 0)):
            return f"`{what}` must be zero"
        if kind == "input_below" and bool(np.any(value >= check["limit"])):
            return f"`{what}` must be less than {check['limit']}, got {value.tolist()}"
        return None
    if kind == "input_rank":
        shape = facts.shapes.get(_input(node, check["input"]) or "")
        if shape is not None and len(shape) not in check["ranks"]:
            return f"input {check['input']} must have rank {check['ranks']}, got {len(shape)}"
        return None
    if kind == "input_static":
        shape = facts.shapes.get(_input(node, check["input"]) or "")
        if shape is None:
            return None
        if "axis_attr" in check:
            axis = _attr(node, check["axis_attr"], check["axis_default"])
            dims = [shape[axis]] if -len(shape) <= axis < len(shape) else []
        else:
            dims = list(shape)
        if any(d is None for d in dims):
            return f"input {check['input']} must have static dimensions, got {shape}"
        return None
    if kind == "input_type":
        t = doc_type(facts.types.get(_input(node, check["input"]) or ""))
        if t is not None and t not in check["types"]:
            return f"input {check['input']} must be {check['types']}, got {t}"
        return None
    if kind == "input_absent":
        given = [i for i in check["inputs"] if _input(node, i)]
        return f"inputs {given} are unsupported" if given else None
    if kind == "attr_in":
        value = _decode(_attr(node, check["attr"], check["default"]))
        if value not in check["values"]:
            return f"attribute {check['attr']}={value!r} unsupported; supported: {check['values']}"
        return None
    if kind == "attr_absent":
        given = [a.name for a in node.attribute if a.name in check["attrs"]]
        return f"attributes {given} are unsupported" if given else None
    if kind == "attr_all_ones":
        value = _attr(node, check["attr"], [])
        if any(v != 1 for v in value):
            return f"attribute {check['attr']}={list(value)} must be empty or all ones"
        return None
    if kind == "spatial_rank":
        kernel = _attr(node, "kernel_shape")
        if kernel is not None:
            rank = len(kernel)
        else:
            shape = facts.shapes.get(_input(node, 0) or "")
            if shape is None:
                return None
            rank = len(shape) - 2
        if rank not in check["ranks"]:
            return f"{rank}D spatial input unsupported; supported: {check['ranks']}D"
        return None
    if kind == "pads_symmetric":
        pads = list(_attr(node, "pads", []))
        half = len(pads) // 2
        if pads[:half] != pads[half:]:
            return f"pads {pads}: begin and end must be equal per axis"
        return None
    if kind == "outputs_unused":
        used = [i for i in check["outputs"]
                if i < len(node.output) and node.output[i] and node.output[i] in facts.consumed]
        return f"outputs {used} are unsupported (they are used)" if used else None
    if kind == "same_activations":
        if _decode(_attr(node, "direction", "forward")) != "bidirectional":
            return None
        acts = [_decode(a) for a in _attr(node, "activations", [])]
        k = check["per_direction"]
        if len(acts) == 2 * k and acts[:k] != acts[k:]:
            return f"bidirectional activations {acts}: both directions must use the same"
        return None
    raise AssertionError(f"unknown check kind {kind!r} in the support table")


def check_plugin_node(node: onnx.NodeProto, facts: GraphFacts) -> list[str]:
    """Reasons the attn_deploy plugin would reject ``node`` (empty: accepted)."""
    if node.op_type not in OPS:
        return [f"no attn_deploy plugin named {node.op_type!r}; plugins: {sorted(OPS)}"]
    op = OPS[node.op_type]
    input_names, fields = op.inputs, op.int_attributes
    reasons = []
    namespace = _decode(_attr(node, "plugin_namespace", PLUGIN_NAMESPACE))
    if namespace != PLUGIN_NAMESPACE:
        reasons.append(f"plugin_namespace={namespace!r}; the plugins are in "
                       f"{PLUGIN_NAMESPACE!r}")
    version = _decode(_attr(node, "plugin_version", PLUGIN_VERSION))
    if version != PLUGIN_VERSION:
        reasons.append(f"plugin_version={version!r}; the plugins are version {PLUGIN_VERSION!r}")
    if len([i for i in node.input if i]) != len(input_names):
        reasons.append(f"expected {len(input_names)} inputs ({', '.join(input_names)}), "
                       f"got {len(node.input)}")
    values = {}
    for name in fields:
        attr = next((a for a in node.attribute if a.name == name), None)
        if attr is None:
            reasons.append(f"missing int attribute {name!r}")
        elif attr.type != onnx.AttributeProto.INT:
            reasons.append(f"attribute {name!r} must be an int, got "
                           f"{onnx.AttributeProto.AttributeType.Name(attr.type)}")
        else:
            values[name] = attr.i
    attribute_errors = op.attribute_errors(values)
    reasons += attribute_errors
    types = [doc_type(facts.types.get(i)) for i in node.input if i]
    for i, t in enumerate(types):
        if t is not None and t not in ("FP32", "FP16"):
            reasons.append(f"input {input_names[i]!r} must be FP32 or FP16, got {t}")
    if len({t for t in types if t is not None}) > 1:
        reasons.append(f"inputs must share one type, got {types}")
    if op is CARAFE and len(values) == 3 and len(node.input) == 2:
        reasons += _carafe_shape_reasons(values, facts.shapes.get(node.input[0]),
                                         facts.shapes.get(node.input[1]))
    if not attribute_errors and len(values) == len(fields):  # the ops' size limits
        reasons += op.shape_errors([facts.shapes.get(i) for i in node.input], values)
    return reasons


def _carafe_shape_reasons(v: dict, features, masks) -> list[str]:
    reasons = []
    if features is not None and len(features) == 4 and features[1] is not None \
            and v["group_size"] >= 1 and features[1] % v["group_size"]:
        reasons.append(f"group_size {v['group_size']} must divide the {features[1]} channels "
                       "of 'features'")
    want = v["group_size"] * v["kernel_size"] ** 2
    if masks is not None and len(masks) == 4 and masks[1] is not None and masks[1] != want:
        reasons.append(f"'masks' must have group_size * kernel_size^2 = {want} channels, "
                       f"got {masks[1]}")
    return reasons
