"""ONNX for ``attn_deploy.ops.carafe``: the ``attn_deploy::CARAFE`` node and its function.

Node: inputs ``features [N, C, H, W]``, ``masks [N, G*k*k, sH, sW]``; int attributes
``kernel_size``, ``group_size``, ``scale_factor``; output ``[N, C, sH, sW]``.

Two standard-op bodies, both with the k*k taps unrolled (so a body is specialised to its
attributes; :func:`carafe_function` dispatches on them when a model mixes configurations):

- ``unfold_matmul``: gather the k*k taps of the low-resolution features channels-last
  ([N, H, W, G, k*k, C/G], two Concat stages of shifted Slices), then one batched MatMul per
  low-resolution pixel with its s*s output kernels ([N, H, W, G, s*s, k*k]), then Transpose back.
  The multiply-adds run inside MatMul, so the full-resolution tensors are touched once.
- ``shift``: nearest-upsample the padded features (Resize), then for each tap a shifted Slice
  times its mask channel, accumulated with Add: 3*k*k passes over full-resolution tensors,
  but fewer and simpler nodes.

Measured on ONNX Runtime 1.32 CPU, one thread (min of interleaved runs): ``unfold_matmul`` is the
faster body for k >= 5 with one group (k=5, G=1, s=2: 1.1-1.7x over ``shift`` from 12x12 to 64x64
inputs), ``shift`` for k <= 3 and for grouped masks; :func:`body_kind` encodes that choice. Two
other decompositions lost by far: gathering the k*k neighbours with index tensors (15-30x slower)
and the dynamo export of :func:`~attn_deploy.ops.carafe_reference` (8-D broadcasting, 10-17x).
"""
from __future__ import annotations

from onnx import FunctionProto

from attn_deploy.op_contract import CARAFE, DOMAIN, DOMAIN_VERSION
from attn_deploy.ops.onnx_functions import Body, make_function, node_schema, shifted_slice_ends

SCHEMA = node_schema(CARAFE)


def carafe_translation(features, masks, kernel_size: int, group_size: int, scale_factor: int):
    """Dynamo-exporter translation of ``torch.ops.attn_deploy.carafe``: one custom node."""
    from onnxscript.values import Op, Opset

    node = Op(Opset(DOMAIN, DOMAIN_VERSION), CARAFE.name, SCHEMA)
    return node(features, masks, kernel_size=kernel_size, group_size=group_size,
                scale_factor=scale_factor)


def body_kind(k: int, g: int, s: int) -> str:
    return "unfold_matmul" if k >= 5 and g == 1 else "shift"


def _output_shape(b: Body, x: str, m: str) -> str:
    return b.op("Concat", b.op("Shape", x, end=2), b.op("Shape", m, start=2), axis=0)


def shift_body(b: Body, x: str, m: str, k: int, g: int, s: int) -> str:
    r = (k - 1) // 2
    xp = b.op("Pad", x, b.ints(0, 0, r, r, 0, 0, r, r)) if r else x
    if s > 1:  # the r zero rows/cols upsample to the s*r zeros the shifted taps need
        scales = b.op("Constant", value_floats=[1.0, 1.0, float(s), float(s)])
        xp = b.op("Resize", xp, "", scales, mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    # [N, G, C/G, sHp, sWp] and [N, G, k*k, sH, sW]
    xp = b.op("Reshape", xp, b.op("Concat", b.dim(xp, 0), b.ints(g, -1),
                                  b.op("Shape", xp, start=2), axis=0))
    mg = b.op("Reshape", m, b.op("Concat", b.dim(m, 0), b.ints(g, k * k),
                                 b.op("Shape", m, start=2), axis=0))
    out = None
    for i in range(k):
        for j in range(k):
            ends = [shifted_slice_ends(s * i, 2 * s * r), shifted_slice_ends(s * j, 2 * s * r)]
            tap = b.op("Mul", b.slice(xp, [s * i, s * j], ends, [3, 4]),
                       b.slice(mg, [i * k + j], [i * k + j + 1], [2]))
            out = tap if out is None else b.op("Add", out, tap)
    return b.op("Reshape", out, _output_shape(b, x, m))


def unfold_matmul_body(b: Body, x: str, m: str, k: int, g: int, s: int) -> str:
    r = (k - 1) // 2
    xp = b.op("Pad", x, b.ints(0, 0, r, r, 0, 0, r, r)) if r else x
    xt = b.op("Reshape", b.op("Transpose", xp, perm=[0, 2, 3, 1]),
              b.ints(0, 0, 0, g, 1, -1))                               # [N, Hp, Wp, G, 1, C/G]
    if k > 1:
        xt = b.op("Concat", *[b.slice(xt, [j], [shifted_slice_ends(j, 2 * r)], [2])
                              for j in range(k)], axis=4)              # [N, Hp, W, G, k, C/G]
        xt = b.op("Concat", *[b.slice(xt, [i], [shifted_slice_ends(i, 2 * r)], [1])
                              for i in range(k)], axis=4)              # [N, H, W, G, kk, C/G]
    m7 = b.op("Reshape", m, b.op("Concat", b.dim(x, 0), b.ints(g, k * k), b.dim(x, 2),
                                 b.ints(s), b.dim(x, 3), b.ints(s), axis=0))
    mt = b.op("Reshape", b.op("Transpose", m7, perm=[0, 3, 5, 1, 4, 6, 2]),
              b.ints(0, 0, 0, g, s * s, k * k))                        # [N, H, W, G, ss, kk]
    out = b.op("Reshape", b.op("MatMul", mt, xt), b.ints(0, 0, 0, g, s, s, -1))
    out = b.op("Transpose", out, perm=[0, 3, 6, 1, 4, 2, 5])          # [N, G, C/G, H, s, W, s]
    return b.op("Reshape", out, _output_shape(b, x, m))


BODIES = {"shift": shift_body, "unfold_matmul": unfold_matmul_body}


def carafe_function(configs: list[tuple[int, int, int]], opset: int,
                    kind: str | None = None, name: str = CARAFE.name) -> FunctionProto:
    """The ``attn_deploy::CARAFE`` function for the (kernel_size, group_size, scale_factor)
    ``configs`` used in a model: one body, or an If chain on the node's attributes when a model
    mixes configurations. ``kind`` forces a body (tests); default :func:`body_kind`. ``name``
    other than ``CARAFE`` makes a helper function to inline (the plain flavor)."""
    configs = sorted(set(configs))

    def dispatch(b: Body, todo: list[tuple[int, int, int]], attrs: list[str]) -> str:
        cfg = todo[0]
        if len(todo) == 1:
            return BODIES[kind or body_kind(*cfg)](b, "features", "masks", *cfg)
        same = [b.op("Equal", a, b.scalar_int(v)) for a, v in zip(attrs, cfg)]
        cond = b.op("And", b.op("And", same[0], same[1]), same[2])
        then_b, else_b = Body(b.counter), Body(b.counter)
        then_g = then_b.subgraph("then", dispatch(then_b, [cfg], attrs))
        else_g = else_b.subgraph("else", dispatch(else_b, todo[1:], attrs))
        return b.op("If", cond, then_branch=then_g, else_branch=else_g)

    def build(b: Body) -> str:
        attrs = [b.attr_int(a) for a in CARAFE.int_attributes] if len(configs) > 1 else []
        return dispatch(b, configs, attrs)

    return make_function(CARAFE, opset, build,
                         "CARAFE reassembly (arXiv:1905.02188) in standard ONNX ops", name=name)
