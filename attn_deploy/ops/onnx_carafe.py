"""ONNX for ``attn_deploy.ops.carafe``: the ``attn_deploy::CARAFE`` node and its function.

Node: inputs ``features [N, C, H, W]``, ``masks [N, G*k*k, sH, sW]``; int attributes
``kernel_size``, ``group_size``, ``scale_factor``; output ``[N, C, sH, sW]``.

Two standard-op bodies, specialised to the attributes (:func:`carafe_function` dispatches on
them when a model mixes configurations):

- ``band``: the reassembly as batched MatMuls over tiles of T low-resolution columns. For output
  row (y, sy) and tile, ``out[(t, sx), c] = masks_band[(t, sx), (i, o)] @ window[(i, o), c]``,
  where ``window`` holds the k feature rows y-r..y+r over the tile's T+2r columns (channels
  last) and ``masks_band`` places each pixel's k*k mask values at columns o = t + j of its rows
  (zeros elsewhere; built with one more tiny MatMul against a constant 0/1 tensor). The
  multiply-adds run in MatMul at (T+2r)/k times the op's own FLOPs; the windows are k*(T+2r)/T
  times the features; W is padded up to a multiple of T and the padding sliced off at the end.
- ``shift``: nearest-upsample the padded features (Resize), then per tap a shifted Slice times
  its mask channel, accumulated with Add: 3*k*k passes over full-resolution tensors. Cheapest
  for k = 1 (one Resize and one Mul).

How the layout was chosen (ONNX Runtime 1.32 CPU, 2 threads, spinning off; ``python -m
attn_deploy.ops.benchmark --bodies`` times the bodies side by side): ORT's Transpose is fast
only when it moves one axis (fastest when the moved axis' inner block is one element), and ORT
merges consecutive Transposes into one general permutation, which ran 10-50x slower than a
copy. So the GEMM batch is (N, G, H, sy, tile), and its output [N, G, H, sy, tile, T*s, C/G]
needs one single-axis Transpose (channels out) to be the result. Slower variants measured: sy
inside the GEMM rows (a second Transpose: 1.2x slower kept apart, 2x when ORT merged the two),
channels-first windows (C/G as GEMM rows: a faster MatMul, but dearer windows; 1.2x slower),
T=4 and T=16 (1.1-1.4x slower than T=8). At the CARAFE FPN size (features 1x256x64x64, k=5,
G=1, s=2) ``band`` beat ``shift`` 2.5x (k=3) to 7x (k=5, s=4) and the previous unfold body (all
k*k taps gathered channels-last, 25x the features, then a 7-D Transpose) 4-6x; ``shift`` wins
for k=1 only.
"""
from __future__ import annotations

import numpy as np
from onnx import FunctionProto, numpy_helper

from attn_deploy.op_contract import CARAFE, DOMAIN, DOMAIN_VERSION
from attn_deploy.ops.onnx_functions import (INT64_MAX, Body, make_function, node_schema,
                                            shifted_slice_ends)

SCHEMA = node_schema(CARAFE)


def carafe_translation(features, masks, kernel_size: int, group_size: int, scale_factor: int):
    """Dynamo-exporter translation of ``torch.ops.attn_deploy.carafe``: one custom node."""
    from onnxscript.values import Op, Opset

    node = Op(Opset(DOMAIN, DOMAIN_VERSION), CARAFE.name, SCHEMA)
    return node(features, masks, kernel_size=kernel_size, group_size=group_size,
                scale_factor=scale_factor)


def body_kind(k: int, g: int, s: int) -> str:
    return "shift" if k == 1 else "band"


def _output_shape(b: Body, x: str, m: str) -> str:
    return b.op("Concat", b.op("Shape", x, end=2), b.op("Shape", m, start=2), axis=0)


def shift_body(b: Body, x: str, m: str, k: int, g: int, s: int) -> str:
    """features [N, C, H, W], masks [N, G*k*k, sH, sW] -> [N, C, sH, sW], one shifted
    multiply-add per tap over the upsampled features (module docstring)."""
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


TILE = 8  # low-resolution columns per band tile (module docstring: fastest of 4, 8, 16)


def _band_matrix(b: Body, m: str, x: str, k: int, g: int, s: int, tile: int, nt: str,
                 extra: str) -> str:
    """masks [N, G*k*k, sH, sW] -> [N, G, H, s, nt, T*s, k*L]: for output row (y, sy) and tile,
    row (t, sx) holds the k*k mask values of pixel (y*s+sy, (tile*T+t)*s+sx) at columns
    (i, o = t + j), zeros elsewhere (L = T + 2r)."""
    length = tile + k - 1
    mp = b.op("Pad", m, b.op("Concat", b.ints(0, 0, 0, 0, 0, 0, 0), b.op("Mul", extra, b.ints(s)),
                             axis=0))
    m8 = b.op("Reshape", mp, b.op("Concat", b.ints(-1, k, k), b.dim(x, 2), b.ints(s), nt,
                                  b.ints(tile, s), axis=0))         # [NG, i, j, H, sy, nt, t, sx]
    mt = b.op("Reshape", b.op("Transpose", m8, perm=[0, 3, 4, 5, 6, 7, 1, 2]),
              b.ints(0, 0, 0, 0, 0, s * k, k))                    # [NG, H, sy, nt, t, (sx, i), j]
    place = np.zeros((tile, k, length), np.float32)                # place[t, j, o] = (o == t + j)
    for t in range(tile):
        place[t, np.arange(k), t + np.arange(k)] = 1
    place = b.op("CastLike", b.op("Constant", value=numpy_helper.from_array(place)), m)
    mt = b.op("MatMul", mt, place)                                 # [NG, H, sy, nt, t, (sx, i), o]
    return b.op("Reshape", mt, b.op("Concat", b.dim(x, 0), b.ints(g), b.dim(x, 2), b.ints(s), nt,
                                    b.ints(tile * s, k * length), axis=0))


def band_body(b: Body, x: str, m: str, k: int, g: int, s: int, tile: int = TILE) -> str:
    """features [N, C, H, W], masks [N, G*k*k, sH, sW] -> [N, C, sH, sW] as banded MatMuls
    over tiles of ``tile`` columns (module docstring)."""
    r = (k - 1) // 2
    tile = max(tile, 2 * r)  # the halo of a tile must come from the next tile alone
    w = b.dim(x, 3)
    nt = b.op("Div", b.op("Add", w, b.ints(tile - 1)), b.ints(tile))  # ceil(W / T) tiles
    extra = b.op("Sub", b.op("Mul", nt, b.ints(tile)), w)              # padding up to nt*T
    xh = b.op("Transpose", b.op("Reshape", x, b.op("Concat", b.dim(x, 0), b.ints(g, -1),
                                                   b.op("Shape", x, start=2), axis=0)),
              perm=[0, 1, 3, 4, 2])                                # [N, G, H, W, C/G]
    # r zero rows above and below; r zero columns left, and right up to (nt + 1) * T columns
    pads = b.op("Concat", b.ints(0, 0, r, r, 0, 0, 0, r), b.op("Add", extra, b.ints(tile - r)),
                b.ints(0), axis=0)
    xh = b.op("Pad", xh, pads)                                     # [N, G, H+2r, (nt+1)*T, C/G]
    tiles = b.op("Reshape", xh, b.op("Concat", b.ints(0, 0, 0, -1, tile),
                                     b.op("Shape", xh, start=4), axis=0))
    win = b.slice(tiles, [0], [-1], [3])                           # [N, G, H+2r, nt, T, C/G]
    if r:  # each tile's 2r halo columns are the first of the next tile
        win = b.op("Concat", win, b.slice(tiles, [1, 0], [INT64_MAX, 2 * r], [3, 4]), axis=4)
    win = b.op("Unsqueeze", win, b.ints(4))                        # [N, G, H+2r, nt, 1, L, C/G]
    if k > 1:
        win = b.op("Concat", *[b.slice(win, [i], [shifted_slice_ends(i, 2 * r)], [2])
                               for i in range(k)], axis=4)         # [N, G, H, nt, k, L, C/G]
    win = b.op("Unsqueeze", b.op("Reshape", win, b.ints(0, 0, 0, 0, k * (tile + 2 * r), -1)),
               b.ints(3))                                          # [N, G, H, 1, nt, kL, C/G]
    band = _band_matrix(b, m, x, k, g, s, tile, nt, extra)        # [N, G, H, s, nt, Ts, kL]
    out = b.op("Transpose", b.op("MatMul", band, win),
               perm=[0, 1, 6, 2, 3, 4, 5])                         # [N, G, C/G, H, s, nt, Ts]
    out = b.op("Reshape", out, b.op("Concat", b.op("Shape", x, end=2),
                                    b.op("Shape", m, start=2, end=3), b.ints(-1), axis=0))
    return b.op("Slice", out, b.ints(0), b.op("Shape", m, start=3, end=4), b.ints(3))


BODIES = {"band": band_body, "shift": shift_body}


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
