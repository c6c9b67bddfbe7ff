"""ONNX for ``attn_deploy.ops.criss_cross_attention``: the ``attn_deploy::CrissCrossAttention``
node and its function.

Node: inputs ``query``, ``key`` [N, Cq, H, W] and ``value`` [N, C, H, W], no attributes, output
[N, C, H, W]. Body (standard ops, all TensorRT-parsable): the energies come out transposed,
column [N, W, H', H] and row [N, H, W', W], from batched MatMuls over channels-last views, so
that the aggregations ``value [N, W, C, H'] @ attention [N, W, H', H]`` and
``value [N, H, C, W'] @ attention [N, H, W', W]`` take the attention as it is. The column's self
position gets -inf added from an [H, H] identity built from Range + Equal (no Diag / EyeLike on a
dynamic size), so the pixel counts once, through the row. One stable softmax over
the H + W - 1 positions, written out: the max and the sum of both parts are combined on a small
[N, H, 1, W] grid before the exponentials are normalised.

Why this layout (ONNX Runtime 1.32 CPU, 2 threads, spinning off; ``python -m
attn_deploy.ops.benchmark``): every large Transpose moves a single axis (ORT's fast path; the
general permutations of the first body, e.g. value to [N, W, H, C], ran 10-50x slower than a
copy), and no Transpose feeds a MatMul (ORT fuses those into a FusedMatMul that ran 3-4x slower
than MatMul here). A Concat + Softmax + Slice over the H + W positions ran the same speed but
needs those transposed operands. 2-3x faster than the first body at 1x512x64x64. The key's
column layout is made in two single-axis moves that ORT must not fold into one (see
``_transpose_unfused``), and the self position is masked with an Add: together 15-30% faster
than the body before them (2x256x97x61; the same at 1x512x64x64, measured interleaved).

Where the time goes at 1x64x64x64 / 1x512x64x64 (ORT profile, 2 threads, quiet machine, 9.1 ms
in all): the two aggregation MatMuls 40%, the four 8 MiB Transposes (value into the column and
row layouts, each part back to NCHW) 35%, the final Add 7%, energies and softmax the rest. Tried
and no faster: channels-last attention ([N, H, W, W'] @ value [N, H, W', C], one Transpose to
NCHW at the end, 0-5% slower), the row part as a broadcast MatMul on value in place
([N, C, H, 1, W'] @ [N, 1, H, W', W], no Transposes, 2x slower MatMul).
"""
from __future__ import annotations

from onnx import FunctionProto

from attn_deploy.op_contract import CRISS_CROSS_ATTENTION, DOMAIN, DOMAIN_VERSION
from attn_deploy.ops.onnx_functions import Body, make_function, node_schema

SCHEMA = node_schema(CRISS_CROSS_ATTENTION)


def criss_cross_translation(query, key, value):
    """Dynamo-exporter translation of ``torch.ops.attn_deploy.criss_cross_attention``."""
    from onnxscript.values import Op, Opset

    node = Op(Opset(DOMAIN, DOMAIN_VERSION), CRISS_CROSS_ATTENTION.name, SCHEMA)
    return node(query, key, value)


def _transpose_unfused(b: Body, x: str, perm: list[int]) -> str:
    """Transpose(x, perm) behind a Reshape of x to its own shape. ONNX Runtime's transpose optimizer
    folds two Transposes in a row into one, and the folded permutation ([0, 3, 2, 1] here) has no
    fast path: 5-10x slower than both single-axis moves together."""
    return b.op("Transpose", b.op("Reshape", x, b.op("Shape", x)), perm=perm)


def criss_cross_body(b: Body, q: str, k: str, v: str) -> str:
    k_rows = b.op("Transpose", k, perm=[0, 2, 3, 1])                 # [N, H, W', Cq]
    k_cols = _transpose_unfused(b, k_rows, [0, 2, 1, 3])              # [N, W, H', Cq]
    e_col = b.op("MatMul", k_cols, b.op("Transpose", q, perm=[0, 3, 1, 2]))  # [N, W, H', H]
    e_row = b.op("MatMul", k_rows, b.op("Transpose", q, perm=[0, 2, 1, 3]))  # [N, H, W', W]
    h = b.op("Squeeze", b.dim(q, 2))
    idx = b.op("Range", b.scalar_int(0), h, b.scalar_int(1))
    self_pos = b.op("Equal", b.op("Unsqueeze", idx, b.ints(1)),
                    b.op("Unsqueeze", idx, b.ints(0)))                 # [H, H] identity
    ninf = b.op("CastLike", b.op("Constant", value_float=float("-inf")), e_col)
    zero = b.op("CastLike", b.op("Constant", value_float=0.0), e_col)
    # + (-inf on the diagonal, else 0): a broadcast Add runs faster than a Where over e_col.
    e_col = b.op("Add", e_col, b.op("Where", self_pos, ninf, zero))

    def col_to_row(t: str) -> str:  # per-pixel [N, W, 1, H] <-> [N, H, 1, W] (small)
        return b.op("Transpose", t, perm=[0, 3, 2, 1])

    peak = b.op("Max", b.op("ReduceMax", e_row, b.ints(2), keepdims=1),
                col_to_row(b.op("ReduceMax", e_col, b.ints(2), keepdims=1)))  # [N, H, 1, W]
    p_row = b.op("Exp", b.op("Sub", e_row, peak))
    p_col = b.op("Exp", b.op("Sub", e_col, col_to_row(peak)))
    total = b.op("Add", b.op("ReduceSum", p_row, b.ints(2), keepdims=1),
                 col_to_row(b.op("ReduceSum", p_col, b.ints(2), keepdims=1)))
    a_row = b.op("Div", p_row, total)                                 # [N, H, W', W]
    a_col = b.op("Div", p_col, col_to_row(total))                     # [N, W, H', H]
    out_col = b.op("MatMul", b.op("Transpose", v, perm=[0, 3, 1, 2]), a_col)  # [N, W, C, H]
    out_row = b.op("MatMul", b.op("Transpose", v, perm=[0, 2, 1, 3]), a_row)  # [N, H, C, W]
    return b.op("Add", b.op("Transpose", out_col, perm=[0, 2, 3, 1]),
                b.op("Transpose", out_row, perm=[0, 2, 1, 3]))


def criss_cross_function(opset: int) -> FunctionProto:
    """The ``attn_deploy::CrissCrossAttention`` function (no attributes)."""
    return make_function(CRISS_CROSS_ATTENTION, opset,
                         lambda b: criss_cross_body(b, *CRISS_CROSS_ATTENTION.inputs),
                         "Criss-cross attention (CCNet, arXiv:1811.11721) in standard ONNX ops")
