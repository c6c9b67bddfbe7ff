"""Adaptive average / max pooling that exports with dynamic H and W and keeps PyTorch's bins.

The dynamo exporter lowers ``nn.AdaptiveAvgPool2d`` to sizes other than 1 to a pooling node
whose kernel is sized for the example input, so the saved model has symbolic H/W but gives wrong
numbers at other sizes (DESIGN.md, export pitfalls). This layer computes the same bins as
PyTorch for every input size, from the runtime shape, with ops TensorRT's ONNX parser handles.

Bins (PyTorch's rule): output row ``i`` of ``oh`` covers input rows
``[floor(i * H / oh), ceil((i + 1) * H / oh))``, computed in integers; the same along W. Bins
may overlap (``oh`` not dividing ``H``, or ``oh > H``) and are never empty.

Forms, the same in eager and in the exported graph (one code path):
- avg: a pooling matrix per axis, ``P_h[oh, H]`` with ``1 / bin length`` inside the bin and 0
  outside (Range, Mul, Less, And, Cast, ReduceSum, Div), then ``P_h @ x @ P_w^T`` (two MatMuls).
  :func:`pyramid_avg_pool` fuses several output sizes into one ``[N, C, H*W] @ [H*W, S]`` MatMul.
- max: separable masked max: ``x`` broadcast against a ``[oh, H, 1]`` mask, -inf outside the bin,
  ReduceMax over H; then the same over W. The max over a rectangle is the max over its rows of
  the max over its columns, so this equals the 2-D bin max exactly. -inf comes in through Where:
  an additive -inf bias measured ~1.6x faster on ORT CPU but turns an out-of-bin +inf into NaN.
  Memory is oh x the input; fine for the small maps attention heads pool.
- output size 1 on an axis: a plain mean / max over that axis (no matrix).
Average results differ from PyTorch's kernel by float rounding only (about 1e-7 relative); max
results are exact.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError

_MODES = ("avg", "max")


def _pair(output_size, name: str = "output_size") -> tuple[int | None, int | None]:
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else output_size
    if len(size) != 2:
        raise AttnDeployError(f"{name}: expected an int or a pair (oh, ow), got {output_size!r}")
    for s in size:
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
            raise AttnDeployError(f"{name}: sizes must be ints >= 1 or None, got {output_size!r}")
    return tuple(size)


def bin_mask(size: int | torch.SymInt, out: int,
             device: torch.device | None = None) -> torch.Tensor:
    """Bool [out, size]: input index k lies in bin i.

    ``floor(i*size/out) <= k < ceil((i+1)*size/out)`` is, in integers,
    ``i*size < (k+1)*out`` and ``k*out < (i+1)*size``: multiplications and comparisons only
    (no division, no float rounding), with ``size`` taken from the runtime shape.
    """
    i = torch.arange(out, device=device, dtype=torch.int64).unsqueeze(1)
    k = torch.arange(size, device=device, dtype=torch.int64).unsqueeze(0)
    return (i * size < (k + 1) * out) & (k * out < (i + 1) * size)


def avg_pool_matrix(size: int | torch.SymInt, out: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | None = None) -> torch.Tensor:
    """[out, size] matrix whose row i averages bin i."""
    mask = bin_mask(size, out, device).to(dtype)
    return mask / mask.sum(1, keepdim=True)


def _check_input(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise AttnDeployError(f"adaptive pooling input: expected a tensor [N, C, H, W] or "
                              f"[C, H, W], got {shape}")
    if not x.dtype.is_floating_point:
        raise AttnDeployError(f"adaptive pooling input: expected a floating dtype, got {x.dtype}")


def _avg_axis(x: torch.Tensor, out: int, axis: int) -> torch.Tensor:
    if out == 1:
        return x.mean(axis, keepdim=True)
    p = avg_pool_matrix(x.shape[axis], out, x.dtype, x.device)
    return torch.matmul(p, x) if axis == -2 else torch.matmul(x, p.transpose(0, 1))


def _max_axis(x: torch.Tensor, out: int, axis: int) -> torch.Tensor:
    if out == 1:
        return x.amax(axis, keepdim=True)
    mask = bin_mask(x.shape[axis], out, x.device)
    fill = torch.full((), float("-inf"), dtype=x.dtype, device=x.device)
    if axis == -2:   # x [..., H, W] -> [..., out, H, W], reduce H
        return torch.where(mask.unsqueeze(-1), x.unsqueeze(-3), fill).amax(-2)
    # x [..., R, W] -> [..., R, out, W], reduce W
    return torch.where(mask, x.unsqueeze(-2), fill).amax(-1)


def adaptive_pool2d(x: torch.Tensor, output_size, mode: str = "avg") -> torch.Tensor:
    """Adaptive pooling of ``x`` [N, C, H, W] (or [C, H, W]) to ``output_size``.

    ``output_size``: int or (oh, ow); None along an axis keeps that axis. Same bins as
    ``F.adaptive_avg_pool2d`` / ``F.adaptive_max_pool2d``; returns [N, C, oh, ow].
    """
    if mode not in _MODES:
        raise AttnDeployError(f"mode: expected one of {list(_MODES)}, got {mode!r}")
    oh, ow = _pair(output_size)
    _check_input(x)
    pool_axis = _avg_axis if mode == "avg" else _max_axis
    if oh is not None:
        x = pool_axis(x, oh, -2)
    if ow is not None:
        x = pool_axis(x, ow, -1)
    return x


def pyramid_pool_matrix(h: int | torch.SymInt, w: int | torch.SymInt, sizes: Sequence[int],
                        dtype: torch.dtype = torch.float32,
                        device: torch.device | None = None) -> torch.Tensor:
    """[H*W, S] matrix, S = sum(s*s): column ``offset_s + i*s + j`` averages bin (i, j) of the
    s x s pooling, sizes in the given order (PSP-style sampling as in ANN)."""
    rows = []
    for s in sizes:
        ph = avg_pool_matrix(h, s, dtype, device)                    # [s, H]
        pw = avg_pool_matrix(w, s, dtype, device)                    # [s, W]
        rows.append((ph[:, None, :, None] * pw[None, :, None, :]).reshape(s * s, h * w))
    return (torch.cat(rows, 0) if len(rows) > 1 else rows[0]).transpose(0, 1)


def pyramid_avg_pool(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Average-pool ``x`` [N, C, H, W] to s x s for each s in ``sizes``, flattened and concatenated.

    Returns [N, C, sum(s*s)], equal to ``cat([adaptive_avg_pool2d(x, s).flatten(2) ...], 2)``,
    computed as one MatMul against :func:`pyramid_pool_matrix` instead of one pooling per size.
    """
    _check_input(x)
    if x.dim() != 4:
        raise AttnDeployError(f"pyramid_avg_pool input: expected [N, C, H, W], got "
                              f"{tuple(x.shape)}")
    q = pyramid_pool_matrix(x.shape[-2], x.shape[-1], sizes, x.dtype, x.device)
    return torch.matmul(x.flatten(2), q)


class AdaptivePool2d(nn.Module):
    """Drop-in for ``nn.AdaptiveAvgPool2d`` (``mode="avg"``) / ``nn.AdaptiveMaxPool2d``
    (``mode="max"``, values only) that exports with dynamic H and W."""

    def __init__(self, output_size, mode: str = "avg"):
        super().__init__()
        if mode not in _MODES:
            raise AttnDeployError(f"mode: expected one of {list(_MODES)}, got {mode!r}")
        self.output_size = _pair(output_size)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, oh, ow]."""
        return adaptive_pool2d(x, self.output_size, self.mode)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, mode={self.mode!r}"


class AdaptiveAvgPool2d(AdaptivePool2d):
    def __init__(self, output_size):
        super().__init__(output_size, "avg")


class AdaptiveMaxPool2d(AdaptivePool2d):
    def __init__(self, output_size):
        super().__init__(output_size, "max")
