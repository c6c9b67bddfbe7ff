"""Op implementations that replace onnx.reference's own where those are wrong or too slow.

- ``GridSample``: onnx 1.23's reference knows only the opset-20 mode names ("linear", "cubic"),
  so a GridSample exported at opset 16-19 ("bilinear", "bicubic") raises; it also loops over
  every output element in Python (about 20 s for dgmn's default sizes). This version renames the
  modes and vectorises the 4-D bilinear case with zeros/border padding in numpy (float64); every
  other case falls through to onnx's implementation.
"""
from __future__ import annotations

import numpy as np
from onnx.reference.ops.op_grid_sample import GridSample as _OnnxGridSample

_MODE_NAMES = {"bilinear": "linear", "bicubic": "cubic"}


class GridSample(_OnnxGridSample):
    op_domain = ""

    def _run(self, X, grid, mode=None, padding_mode=None, align_corners=None):
        mode = _MODE_NAMES.get(mode or self.mode, mode or self.mode)
        padding_mode = padding_mode or self.padding_mode
        corners = self.align_corners if align_corners is None else align_corners
        if mode != "linear" or padding_mode not in ("zeros", "border") or X.ndim != 4:
            return super()._run(X, grid, mode=mode, padding_mode=padding_mode,
                                align_corners=corners)
        n, c, h, w = X.shape
        gx, gy = grid[..., 0].astype(np.float64), grid[..., 1].astype(np.float64)
        if corners:
            px, py = (gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)
        else:
            px, py = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
        if padding_mode == "border":
            px, py = np.clip(px, 0, w - 1), np.clip(py, 0, h - 1)
        x0, y0 = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        flat = X.reshape(n, c, h * w).astype(np.float64)
        out = np.zeros((n, c, px[0].size))
        for yi in (y0, y0 + 1):
            for xi in (x0, x0 + 1):
                wgt = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
                inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
                idx = np.where(inside, yi * w + xi, 0).reshape(n, 1, -1)
                vals = np.take_along_axis(flat, np.broadcast_to(idx, (n, c, idx.shape[2])), 2)
                out += vals * (wgt * inside).reshape(n, 1, -1)
        return (out.reshape((n, c) + grid.shape[1:3]).astype(X.dtype),)


REFERENCE_OPS = [GridSample]
