"""Non-local block (2-D form), with the paper's four pairwise functions.

Paper: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018, arXiv:1711.07971.
Official code: https://github.com/facebookresearch/video-nonlocal-net (Caffe2, video).

``z_i = W_z y_i + x_i`` with ``y_i = sum_j f(x_i, x_j) g(x_j) / C(x)``. theta, phi and g are
1x1 convs to ``inter = C/2`` channels; W_z is a 1x1 conv back to C followed by BatchNorm whose
scale is initialised to 0 (paper, Sec. 4.1), so a fresh block is an identity. ``mode``:

- ``embedded_gaussian``: ``f = exp(theta_i . phi_j)``, C(x) = sum_j f, i.e. a softmax over j.
- ``gaussian``: ``f = exp(x_i . x_j)`` on the raw input (no theta/phi convs), softmax over j.
- ``dot_product``: ``f = theta_i . phi_j``, C(x) = N, the number of positions j.
- ``concatenation``: ``f = ReLU(w_f . [theta_i; phi_j])``, C(x) = N. Since
  ``w_f . [a; b] = w_1 . a + w_2 . b``, it is computed as a broadcast add of two per-position
  scalars (``w_1 . theta_i`` and ``w_2 . phi_j``), the same numbers without building the
  ``HW x HW x 2C`` concatenated tensor. w_f has no bias (the paper's "weight vector").

Choices: ``sub_sample`` max-pools phi and g by 2x2 *after* their convs, as the paper says (the
official Caffe2 code pools the input before them). Pooling uses ceil mode: on even sizes it is
the usual 2x2 pooling, and on odd sizes the last row/column forms its own window instead of being
dropped, so any H, W >= 2 works. N in C(x) counts the (possibly pooled) positions j. The official
code has an optional 1/sqrt(inter) scale on theta.phi behind a config flag; the paper's formula has
none, and neither does this block. The 3-D (video) form differs only in the conv/pool rank.
``bn_weight_init`` keeps the paper's 0; the registry builds the block with 1.0 so that an
untrained block's export and parity checks exercise the attention path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg, choice_arg, float_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register

MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")


class NonLocal2d(nn.Module):
    def __init__(self, channels: int = 32, rd_ratio: float = 1 / 2,
                 rd_channels: int | None = None, mode: str = "embedded_gaussian",
                 sub_sample: bool = False, bn_weight_init: float = 0.0):
        super().__init__()
        mode = choice_arg("mode", mode, MODES)
        inter = reduced_channels(channels, rd_ratio, rd_channels)
        sub_sample = bool_arg("sub_sample", sub_sample)
        bn_weight_init = float_arg("bn_weight_init", bn_weight_init)
        self.channels, self.mode, self.sub_sample = channels, mode, sub_sample
        self.g = nn.Conv2d(channels, inter, 1)
        if mode != "gaussian":
            self.theta = nn.Conv2d(channels, inter, 1)
            self.phi = nn.Conv2d(channels, inter, 1)
        if mode == "concatenation":
            self.concat_project = nn.Conv2d(2 * inter, 1, 1, bias=False)
        self.w_z = nn.Conv2d(inter, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, 2, 2, ceil_mode=True) if self.sub_sample else t

    def affinity(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> f(x_i, x_j) / C(x) as [N, HW, M], M = number of positions j
        (HW, or ceil(H/2) * ceil(W/2) with sub-sampling)."""
        if self.mode == "gaussian":
            q, k = x.flatten(2), self._pool(x).flatten(2)
        else:
            q, k = self.theta(x).flatten(2), self._pool(self.phi(x)).flatten(2)
        if self.mode in ("embedded_gaussian", "gaussian", "dot_product"):
            f = torch.matmul(q.transpose(1, 2), k)  # [N, HW, M]
            if self.mode == "dot_product":
                return f / k.shape[-1]
            return f.softmax(dim=-1)
        w = self.concat_project.weight.flatten(1)  # [1, 2 * inter]
        inter = q.shape[1]
        a = torch.matmul(w[:, :inter], q)  # [N, 1, HW]: w_1 . theta_i
        b = torch.matmul(w[:, inter:], k)  # [N, 1, M]:  w_2 . phi_j
        return F.relu(a.transpose(1, 2) + b) / k.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> z: [N, C, H, W]."""
        check_nchw(x, self.channels)
        f = self.affinity(x)
        v = self._pool(self.g(x)).flatten(2)  # [N, inter, M]
        y = torch.matmul(v, f.transpose(1, 2))  # [N, inter, HW]
        y = y.reshape(x.shape[0], -1, x.shape[2], x.shape[3])
        return self.bn(self.w_z(y)) + x


register(
    "non_local", NonLocal2d, title="Non-local block",
    paper="Non-local Neural Networks, CVPR18, arXiv:1711.07971",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12}, defaults={"bn_weight_init": 1.0},
    min_dims={"H": 2, "W": 2},
)
