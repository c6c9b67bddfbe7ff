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
  windows come from one Gather of pixel rows (C/G floats each) of the zero-padded, channels-last
  features, with indices (y + i) * Wp + tile * T + o computed from the shapes. The
  multiply-adds run in MatMul at (T+2r)/k times the op's own FLOPs; the windows are k*(T+2r)/T
  times the features; W is padded up to a multiple of T and the padding sliced off at the end
  (skipped by an If when there is none and G = 1).
- ``shift``: nearest-upsample the padded features (Resize), then per tap a shifted Slice times
  its mask channel, accumulated with Add: 3*k*k passes over full-resolution tensors. Cheapest
  for k = 1 (one Resize and one Mul).

How the layout was chosen (ONNX Runtime 1.32 CPU, 2 threads, spinning off; ``python -m
attn_deploy.ops.benchmark --bodies`` times the bodies side by side): ORT's Transpose is fast
only when it moves one axis (fastest when the moved axis' inner block is one element), and ORT
merges consecutive Transposes into one general permutation, which ran 10-50x slower than a
copy. So the GEMM batch is (N, G, H, sy, tile), and its output [N, G, H, sy, tile, T*s, C/G]
needs one single-axis Transpose (channels out) to be the result. Every op's output is a fresh
copy (Reshape aside, but not in or after an If), so the body keeps copies of full-size tensors
few. At the CARAFE FPN size (features 1x256x64x64, k=5, G=1, s=2), per node, one thread (CPU
time) / two threads: MatMul 10.5 / 5.5 ms, output Transpose 4.5 / 2.3, window Gather 3.8 / 2.3,
mask band 2.0 / 1.4, features to channels-last and Pad 1.2 / 0.9 (Pad on one thread). The
MatMul's time is mostly MLAS packing its B operand (the window, once per batch, so twice per
window: the two sy share it by broadcasting): 512 [16 x 60] @ [60 x 256] products took 7.3 ms,
with 32 rows 10.2. Slower variants measured: windows as k row Slices joined by Concat (the
previous body: 6 ms of copies on one thread instead of the Gather's 3.8 on all), sy inside the
GEMM rows (a second Transpose: 1.2x slower kept apart, 2x when ORT merged the two),
channels-first windows (C/G as GEMM rows, A is not packed: the MatMul takes half the time, but
building [C/G, (i, o)] windows costs as much as it saves: a Concat of (T+2r)-float pieces 2.5x
the Gather, or a Transpose of the windows 1.3x), the MatMul with its window operand transposed
(FusedMatMul transA: 1.4x slower), T = 4, 6, 12 and 16 (no faster than T = 8, up to 1.4x
slower). At the CARAFE FPN size ``band`` beat ``shift`` 2.5x (k=3) to 7x (k=5, s=4) and the
unfold body before it (all k*k taps gathered channels-last, 25x the features, then a 7-D
Transpose) 4-6x; ``shift`` wins for k=1 only.
"""
from __future__ import annotations

import numpy as np
from onnx import FunctionProto, numpy_helper

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
    return "shift" if k == 1 else "band"


def _output_shape(b: Body, x: str, m: str) -> str:
    return b.op("Concat", b.op("Shape", x, end=2), b.op("Shape", m, start=2), axis=0)


def shift_body(b: Body, x: str, m: str, k: int, g: int, s: int, nested: bool = False) -> str:
    """features [N, C, H, W], masks [N, G*k*k, sH, sW] -> [N, C, sH, sW], one shifted
    multiply-add per tap over the upsampled features (module docstring); no If of its own, so
    ``nested`` changes nothing."""
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


def _window_indices(b: Body, x: str, wp: str, k: int, tile: int, nt: str) -> str:
    """[H, nt, k, L] int64: row index into the padded pixels [(H+2r) * Wp] of the window of
    output row y and tile: (y + i) * Wp + tile * T + o."""
    length = tile + k - 1
    zero, one = b.scalar_int(0), b.scalar_int(1)
    height = b.op("Squeeze", b.dim(x, 2), b.ints(0))
    rows = b.op("Reshape", b.op("Range", zero, height, one), b.ints(-1, 1, 1, 1))
    taps = b.op("Constant", value=numpy_helper.from_array(
        np.arange(k, dtype=np.int64).reshape(1, 1, k, 1)))
    rows = b.op("Mul", b.op("Add", rows, taps), wp)                # [H, 1, k, 1]
    width = b.op("Squeeze", b.op("Mul", nt, b.ints(tile)), b.ints(0))  # nt * T
    starts = b.op("Reshape", b.op("Range", zero, width, b.scalar_int(tile)),
                  b.ints(1, -1, 1, 1))                             # [1, nt, 1, 1]
    offsets = b.op("Constant", value=numpy_helper.from_array(
        np.arange(length, dtype=np.int64).reshape(1, 1, 1, length)))
    return b.op("Add", rows, b.op("Add", starts, offsets))


def _channels_first(b: Body, out: str, x: str, m: str, g: int, extra: str,
                    nested: bool) -> str:
    """MatMul result [N, G, H, s, nt, T*s, C/G] -> [N, C, sH, sW]: one Transpose, then a Slice
    (a copy of the whole output) to drop the padding columns. With G = 1, an If skips the Slice
    when W is a multiple of T; its branches end in the Transpose that writes the result, as a
    branch that ends in any other op (Identity, Reshape) or an op after the If copies it. Not
    inside another If (``nested``, a model mixing configurations): ONNX Runtime 1.32 inlines a
    branch whose condition it folds, and then loses the names an inner If's branches read."""
    width = b.op("Shape", m, start=3, end=4)
    if g > 1 or nested:
        moved = b.op("Transpose", out, perm=[0, 1, 6, 2, 3, 4, 5])  # [N, G, C/G, H, s, nt, Ts]
        moved = b.op("Reshape", moved, b.op("Concat", b.op("Shape", x, end=2),
                                            b.op("Shape", m, start=2, end=3), b.ints(-1),
                                            axis=0))               # [N, C, sH, nt*Ts]
        return b.op("Slice", moved, b.ints(0), width, b.ints(3))
    rows = b.op("Reshape", out, b.op("Concat", b.dim(x, 0), b.op("Shape", m, start=2, end=3),
                                     b.ints(-1), b.dim(x, 1), axis=0))  # [N, sH, nt*Ts, C]
    whole, padded = Body(b.counter), Body(b.counter)
    whole_out = whole.op("Transpose", rows, perm=[0, 3, 1, 2])     # [N, C, sH, nt*Ts]
    padded_out = padded.op("Slice", padded.op("Transpose", rows, perm=[0, 3, 1, 2]),
                           padded.ints(0), width, padded.ints(3))
    return b.op("If", b.op("Equal", b.op("Squeeze", extra, b.ints(0)), b.scalar_int(0)),
                then_branch=whole.subgraph("whole_tiles", whole_out),
                else_branch=padded.subgraph("padded_tiles", padded_out))


def band_body(b: Body, x: str, m: str, k: int, g: int, s: int, nested: bool = False,
              tile: int = TILE) -> str:
    """features [N, C, H, W], masks [N, G*k*k, sH, sW] -> [N, C, sH, sW] as banded MatMuls
    over tiles of ``tile`` columns (module docstring); ``nested``: built in an If branch."""
    r = (k - 1) // 2
    tile = max(tile, 2 * r)  # the halo of a tile must come from the next tile alone
    length = tile + 2 * r
    w = b.dim(x, 3)
    nt = b.op("Div", b.op("Add", w, b.ints(tile - 1)), b.ints(tile))  # ceil(W / T) tiles
    extra = b.op("Sub", b.op("Mul", nt, b.ints(tile)), w)              # padding up to nt*T
    xh = b.op("Transpose", b.op("Reshape", x, b.op("Concat", b.dim(x, 0), b.ints(g, -1),
                                                   b.op("Shape", x, start=2), axis=0)),
              perm=[0, 1, 3, 4, 2])                                # [N, G, H, W, C/G]
    # r zero rows above and below; r zero columns left, and right up to nt * T + 2r columns
    pads = b.op("Concat", b.ints(0, 0, r, r, 0, 0, 0, r), b.op("Add", extra, b.ints(r)),
                b.ints(0), axis=0)
    xh = b.op("Pad", xh, pads)                                     # [N, G, H+2r, Wp, C/G]
    pixels = b.op("Reshape", xh, b.op("Concat", b.ints(0, 0, -1), b.op("Shape", xh, start=4),
                                      axis=0))                     # [N, G, (H+2r)*Wp, C/G]
    rows = _window_indices(b, x, b.op("Squeeze", b.dim(xh, 3), b.ints(0)), k, tile, nt)
    win = b.op("Gather", pixels, rows, axis=2)                     # [N, G, H, nt, k, L, C/G]
    win = b.op("Unsqueeze", b.op("Reshape", win, b.ints(0, 0, 0, 0, k * length, -1)),
               b.ints(3))                                          # [N, G, H, 1, nt, kL, C/G]
    band = _band_matrix(b, m, x, k, g, s, tile, nt, extra)        # [N, G, H, s, nt, Ts, kL]
    return _channels_first(b, b.op("MatMul", band, win), x, m, g, extra, nested)


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
            return BODIES[kind or body_kind(*cfg)](b, "features", "masks", *cfg,
                                                   nested=len(configs) > 1)
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
