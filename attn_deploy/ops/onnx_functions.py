"""ONNX side of the custom ops: the ``attn_deploy`` domain, node schemas, and function bodies.

Export (``attn_deploy.export.flavors``) writes one ``attn_deploy::<Op>`` node per op call, via
the dynamo exporter's ``custom_translation_table`` and the translations below, then attaches a
model-local ``FunctionProto`` of the same domain and name whose body uses standard ONNX ops only.
Bodies are written with :class:`Body`, a small node recorder over ``onnx.helper``, because they
are specialised to attribute values (the taps of a CARAFE kernel are unrolled).
"""
from __future__ import annotations

from typing import Callable, Sequence

import onnx
from onnx import AttributeProto, helper
from onnx.defs import OpSchema

from attn_deploy.op_contract import DOMAIN, DOMAIN_VERSION, OpContract

FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)", "tensor(double)"]
INT64_MAX = 2 ** 63 - 1


class Body:
    """Records the nodes of a function body (or of a subgraph of one): fresh value names,
    cached int64 constants. ``counter`` is shared with nested bodies so names stay unique."""

    def __init__(self, counter: list[int] | None = None):
        self.nodes: list[onnx.NodeProto] = []
        self.counter = counter if counter is not None else [0]
        self._consts: dict[tuple, str] = {}

    def fresh(self) -> str:
        self.counter[0] += 1
        return f"_t{self.counter[0]}"

    def op(self, op_type: str, *inputs: str, n_out: int = 1, **attrs) -> str | list[str]:
        outs = [self.fresh() for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant."""
        key = ("ints",) + tuple(int(v) for v in values)
        if key not in self._consts:
            self._consts[key] = self.op("Constant", value_ints=list(key[1:]))
        return self._consts[key]

    def scalar_int(self, value: int) -> str:
        key = ("int", int(value))
        if key not in self._consts:
            self._consts[key] = self.op("Constant", value_int=int(value))
        return self._consts[key]

    def attr_int(self, attr_name: str) -> str:
        """A scalar int64 tensor holding the calling node's attribute ``attr_name``."""
        out = self.fresh()
        node = helper.make_node("Constant", [], [out])
        node.attribute.append(AttributeProto(name="value_int", ref_attr_name=attr_name,
                                             type=AttributeProto.INT))
        self.nodes.append(node)
        return out

    def dim(self, x: str, axis: int) -> str:
        """A 1-D int64 tensor [size of x along axis]."""
        return self.op("Shape", x, start=axis, end=axis + 1)

    def slice(self, x: str, starts: Sequence[int], ends: Sequence[int],
              axes: Sequence[int]) -> str:
        return self.op("Slice", x, self.ints(*starts), self.ints(*ends), self.ints(*axes))

    def subgraph(self, name: str, output: str) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, [],
                                 [helper.make_empty_tensor_value_info(output)])


def shifted_slice_ends(start: int, extra: int) -> int:
    """End index of a slice of length L starting at ``start`` from an axis of length
    L + ``extra`` (padded), without reading L: negative from the end, or 'to the end'."""
    end = start - extra
    return end if end < 0 else INT64_MAX


def node_schema(op: OpContract) -> OpSchema:
    """The schema the exporter needs to record an ``attn_deploy::<op.name>`` node (it is not
    registered globally; the node's meaning is its model-local function)."""
    return OpSchema(
        op.name, DOMAIN, DOMAIN_VERSION,
        inputs=[OpSchema.FormalParameter(i, "T") for i in op.inputs],
        outputs=[OpSchema.FormalParameter("output", "T")],
        type_constraints=[("T", FLOAT_TYPES, "floating-point tensors")],
        attributes=[OpSchema.Attribute(a, OpSchema.AttrType.INT, a, required=True)
                    for a in op.int_attributes])


def make_function(op: OpContract, opset: int, build: Callable[[Body], str], doc: str,
                  name: str | None = None) -> onnx.FunctionProto:
    """A model-local function ``attn_deploy::<name or op.name>`` with ``op``'s inputs and
    attributes, whose body ``build`` records and whose single output is the value ``build``
    returns."""
    body = Body()
    out = build(body)
    body.nodes.append(helper.make_node("Identity", [out], ["output"]))
    return helper.make_function(DOMAIN, name or op.name, list(op.inputs), ["output"],
                                body.nodes, [helper.make_opsetid("", opset)],
                                attributes=list(op.int_attributes), doc_string=doc)


def single_node_model(function: onnx.FunctionProto, attributes: dict | None = None,
                      elem_type: int = onnx.TensorProto.FLOAT,
                      opset: int = 18, rank: int = 4) -> onnx.ModelProto:
    """A model of one ``attn_deploy::<function.name>`` node calling ``function``: inputs named
    as the function's, of ``rank`` dynamic dims each, output ``output``; what a runtime runs for
    one op call."""
    def value(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, elem_type, [f"{name}_{i}" for i in range(rank)])

    node = helper.make_node(function.name, list(function.input), ["output"], domain=DOMAIN,
                            **(attributes or {}))
    graph = helper.make_graph(
        [node], function.name, [value(n) for n in function.input], [value("output")])
    return helper.make_model(graph, functions=[function], ir_version=10,
                             opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])
