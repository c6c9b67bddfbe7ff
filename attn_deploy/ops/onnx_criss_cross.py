"""ONNX for ``attn_deploy.ops.criss_cross_attention``: the ``attn_deploy::CrissCrossAttention``
node and its function.

Node: inputs ``query``, ``key`` [N, Cq, H, W] and ``value`` [N, C, H, W], no attributes, output
[N, C, H, W]. Body (standard ops, all TensorRT-parsable): column energies [N, W, H, H'] and row
energies [N, H, W, W'] by batched MatMul over channels-last views; the column's self position is
replaced by -inf with Where on an [H, H] identity built from Range + Equal (no Diag / EyeLike on
a dynamic size); Concat, one Softmax over the H + W positions, Slice apart, MatMul with the
value along columns and rows, Transpose back, Add.
"""
from __future__ import annotations

from onnx import FunctionProto

from attn_deploy.op_contract import CRISS_CROSS_ATTENTION, DOMAIN, DOMAIN_VERSION
from attn_deploy.ops.onnx_functions import INT64_MAX, Body, make_function, node_schema

SCHEMA = node_schema(CRISS_CROSS_ATTENTION)


def criss_cross_translation(query, key, value):
    """Dynamo-exporter translation of ``torch.ops.attn_deploy.criss_cross_attention``."""
    from onnxscript.values import Op, Opset

    node = Op(Opset(DOMAIN, DOMAIN_VERSION), CRISS_CROSS_ATTENTION.name, SCHEMA)
    return node(query, key, value)


def criss_cross_body(b: Body, q: str, k: str, v: str) -> str:
    e_col = b.op("MatMul", b.op("Transpose", q, perm=[0, 3, 2, 1]),
                 b.op("Transpose", k, perm=[0, 3, 1, 2]))              # [N, W, H, H']
    e_row = b.op("MatMul", b.op("Transpose", q, perm=[0, 2, 3, 1]),
                 b.op("Transpose", k, perm=[0, 2, 1, 3]))              # [N, H, W, W']
    h = b.dim(q, 2)
    idx = b.op("Range", b.scalar_int(0), b.op("Squeeze", h), b.scalar_int(1))
    self_pos = b.op("Equal", b.op("Unsqueeze", idx, b.ints(1)),
                    b.op("Unsqueeze", idx, b.ints(0)))                 # [H, H] identity
    ninf = b.op("CastLike", b.op("Constant", value_float=float("-inf")), e_col)
    e_col = b.op("Transpose", b.op("Where", self_pos, ninf, e_col), perm=[0, 2, 1, 3])
    att = b.op("Softmax", b.op("Concat", e_col, e_row, axis=3), axis=3)  # [N, H, W, H'+W']
    a_col = b.op("Slice", att, b.ints(0), h, b.ints(3))
    a_row = b.op("Slice", att, h, b.ints(INT64_MAX), b.ints(3))
    out_col = b.op("MatMul", b.op("Transpose", a_col, perm=[0, 2, 1, 3]),
                   b.op("Transpose", v, perm=[0, 3, 2, 1]))            # [N, W, H, C]
    out_row = b.op("MatMul", a_row, b.op("Transpose", v, perm=[0, 2, 3, 1]))  # [N, H, W, C]
    return b.op("Add", b.op("Transpose", out_col, perm=[0, 3, 2, 1]),
                b.op("Transpose", out_row, perm=[0, 3, 1, 2]))


def criss_cross_function(opset: int) -> FunctionProto:
    """The ``attn_deploy::CrissCrossAttention`` function (no attributes)."""
    return make_function(CRISS_CROSS_ATTENTION, opset,
                         lambda b: criss_cross_body(b, *CRISS_CROSS_ATTENTION.inputs),
                         "Criss-cross attention (CCNet, arXiv:1811.11721) in standard ONNX ops")
