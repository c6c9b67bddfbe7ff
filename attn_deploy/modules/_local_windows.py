"""k x k neighbourhoods of a feature map, in a form that exports to ONNX with dynamic H and W.

Local-window attention (``sasa``, ``san``, ``local_relation``) needs, for every pixel, the
features of its k x k neighbours: an im2col. ``F.unfold`` is the eager way, but the legacy
exporter rejects it on dynamic input and the dynamo exporter lowers it to index arithmetic and
``Gather``, slow on ONNX Runtime. Here the input is padded once (``Pad``, constant or reflect),
k ``Slice``s take the row shifts and k more ``Slice``s of that take the column shifts, joined by
two ``Concat``s: standard ops TensorRT parses, H and W stay symbolic, and the values are
bit-identical to ``F.unfold``. The window axis is last, so the softmax over a window runs on the
innermost axis (ORT transposes for a softmax on any other axis).

Measured (ONNX Runtime 1.32 CPU and PyTorch 2.13 eager, 1 thread each, interleaved runs, median
of 300 (windows) or 150-200 (sasa); a shared 2-core machine with load ~5-8, so compare within a
column, not across sessions). x [2, 32, 12, 12], k = 7, output [N, C, H, W, k*k]:

    form                                  windows alone        inside sasa (defaults)  export  ONNX
                                          ORT ms  eager ms     ORT ms   eager ms      time    nodes
    pad + 2k Slices + 2 Concat (chosen)    0.86    0.52         2.0-2.2  1.7-2.0    3.4 s     62
    same, window axis 2 (not last)         0.82    0.43         2.3-2.4  1.9-2.1    1.7-4 s   62
    pad + k*k Slices + 1 Concat            1.37    1.08         3.2-3.4  2.8        10-12 s  135
    Conv, one-hot k x k kernels, groups=C  1.00    1.12         2.8-3.0  3.2-3.7    0.7-1 s    7
    F.unfold (dynamo: Range/Gather)        4.3     0.64         9.4-11.7 3.0        1-2 s     26

(Export times are for the windows alone; the k*k form also makes block exports 2-3x slower.)
The chosen form is the fastest on ORT inside the block and close to the fastest alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from attn_deploy.errors import AttnDeployError

PADDING_MODES = ("zeros", "reflect")


def local_windows(x: torch.Tensor, kernel_size: int, dilation: int = 1,
                  padding_mode: str = "zeros") -> torch.Tensor:
    """x: [N, C, H, W] -> [N, C, H, W, k*k], stride 1, output aligned with the input.

    ``out[n, c, y, x, i*k + j] = x[n, c, y + (i - r)*d, x + (j - r)*d]`` with r = k // 2 and
    d = ``dilation``; outside the map the value is 0 (``zeros``) or the mirror image without
    repeating the edge (``reflect``, PyTorch's and ONNX's reflect padding). k must be odd.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise AttnDeployError(f"kernel_size must be a positive odd int, got {kernel_size}")
    if padding_mode not in PADDING_MODES:
        raise AttnDeployError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    h, w = x.shape[-2:]
    pad = (kernel_size // 2) * dilation
    if padding_mode == "reflect" and (h <= pad or w <= pad):
        raise AttnDeployError(f"reflect padding by {pad} needs H and W > {pad}, got "
                              f"H={h}, W={w}")
    xp = F.pad(x, (pad, pad, pad, pad), mode="constant" if padding_mode == "zeros" else "reflect")
    # Row shifts first (k Slices of the padded map), then column shifts of that (k more):
    # 2k Slices instead of k*k keep the graph and the export small at the same ORT speed.
    # The window axis goes last so that the softmax over it runs on the innermost axis.
    rows = torch.stack([xp[:, :, i * dilation:i * dilation + h] for i in range(kernel_size)], -1)
    cols = [rows[:, :, :, j * dilation:j * dilation + w] for j in range(kernel_size)]
    return torch.stack(cols, -1).flatten(-2)


def window_validity(x: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Which window positions fall inside the map: bool [1, 1, H, W, k*k] for x [N, C, H, W].

    Built from ``Range`` over the runtime H and W (no padding of a ones map needed).
    """
    h, w = x.shape[-2:]
    offsets = (torch.arange(kernel_size, device=x.device) - kernel_size // 2) * dilation
    ys = torch.arange(h, device=x.device)[:, None] + offsets[None, :]          # [H, k]
    xs = torch.arange(w, device=x.device)[:, None] + offsets[None, :]          # [W, k]
    valid_y = (ys >= 0) & (ys < h)
    valid_x = (xs >= 0) & (xs < w)
    valid = valid_y[:, None, :, None] & valid_x[None, :, None, :]              # [H, W, k, k]
    return valid.reshape(1, 1, h, w, kernel_size * kernel_size)


def window_offsets(kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Relative position (dy, dx) of every window position, float [k*k, 2], row-major."""
    r = kernel_size // 2
    steps = torch.arange(-r, r + 1, dtype=torch.float32) * dilation
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], 1)
