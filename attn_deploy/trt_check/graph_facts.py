"""What the static TensorRT check knows about a graph's values: element types and shapes (ONNX
shape inference, extended past attn_deploy's custom nodes, whose local functions the TensorRT
flavor removes) and build-time constants (initializers and Constant outputs)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from attn_deploy.op_contract import CRISS_CROSS_ATTENTION, DOMAIN, OPS


@dataclass
class GraphFacts:
    """What the checks may ask about a graph's values: types, shapes, constants."""

    types: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple] = field(default_factory=dict)  # int or None per axis
    constants: dict[str, np.ndarray | None] = field(default_factory=dict)  # None: not readable
    consumed: set[str] = field(default_factory=set)  # names some node or graph output uses



def infer_types(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Shape inference, then types for attn_deploy nodes (unknown to ONNX once their local
    functions are removed) from their inputs, repeated so the types flow past them."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for _ in range(1 + sum(n.domain == DOMAIN for n in model.graph.node)):
        try:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # a model shape inference cannot handle is still checked, untyped
            return model
        facts = graph_facts(model.graph, GraphFacts())
        added = False
        for node in model.graph.node:
            if node.domain != DOMAIN or node.op_type not in OPS or not node.input:
                continue
            out = node.output[0]
            if out in facts.types or node.input[-1] not in facts.types:
                continue
            value = onnx.helper.make_tensor_value_info(
                out, facts.types[node.input[-1]], _plugin_output_shape(node, facts))
            model.graph.value_info.append(value)
            added = True
        if not added:
            break
    return model


def _plugin_output_shape(node, facts: GraphFacts):
    if node.op_type == CRISS_CROSS_ATTENTION.name:
        return facts.shapes.get(node.input[-1])
    features = facts.shapes.get(node.input[0])
    scale = next((a.i for a in node.attribute if a.name == "scale_factor"), None)
    if features is None or len(features) != 4 or scale is None:
        return None
    return [features[0], features[1]] + [None if d is None else d * scale for d in features[2:]]


def graph_facts(graph: onnx.GraphProto, outer: GraphFacts) -> GraphFacts:
    facts = GraphFacts(dict(outer.types), dict(outer.shapes), dict(outer.constants),
                       set(outer.consumed))
    for init in graph.initializer:
        facts.types[init.name] = init.data_type
        facts.shapes[init.name] = tuple(init.dims)
        facts.constants[init.name] = _safe_array(init)
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = value.type.tensor_type
        if t.elem_type:
            facts.types[value.name] = t.elem_type
        if t.HasField("shape"):
            facts.shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                             for d in t.shape.dim)
    facts.constants.update(graph_constants(graph.node, facts.constants))
    for node in graph.node:
        facts.consumed.update(i for i in node.input if i)
    facts.consumed.update(o.name for o in graph.output)
    return facts


def graph_constants(nodes, known: dict) -> dict:
    """Outputs of Constant nodes (and Identity of a constant): build-time constants."""
    found = {}
    for node in nodes:
        if node.op_type == "Constant" and node.output:
            attr = node.attribute[0] if node.attribute else None
            value = None
            if attr is not None and attr.HasField("t"):
                value = _safe_array(attr.t)
            elif attr is not None:
                value = onnx.helper.get_attribute_value(attr)
            found[node.output[0]] = None if value is None else np.asarray(value)
        elif node.op_type == "Identity" and node.input and (node.input[0] in known
                                                            or node.input[0] in found):
            found[node.output[0]] = {**known, **found}[node.input[0]]
    return found


def _safe_array(tensor: onnx.TensorProto):
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # external data not loaded, exotic types: a constant of unknown value
        return None
