"""Spatial Pyramid based Graph Reasoning (SpyGR).

Paper: Li, Yang, Zhao, Shen, Lin, Liu, "Spatial Pyramid Based Graph Reasoning for Semantic
Segmentation", CVPR 2020, arXiv:2003.10211. No official code was released.

Graph reasoning directly in coordinate space: every pixel is a node (no projection to an
interaction space and back). The graph is data-dependent: ``A = phi(X) Lambda(X) phi(X)^T``
with ``phi`` a 1x1 conv to M channels and ``Lambda(X)`` a diagonal "attention" matrix computed
from the global context (global average pool, 1x1 conv). The improved Laplacian
``L = I - D^-1/2 A D^-1/2`` (D the degree matrix of A) drives one graph convolution
``Y = relu(BN(Theta(L X)))``. This runs on a spatial pyramid: level 0 is the input, each further
level a 2x2 max pool (floor) of the previous one; each level reasons with its own weights; from
the coarsest level up, a level's output is upsampled bilinearly to the next finer size and
added to that level's output; the block returns ``x + `` the finest sum.

Choices where the paper is silent (documented, not from official code):
- ``phi`` is followed by ReLU and ``Lambda`` by a sigmoid, so A >= 0 and degrees are positive
  (D^-1/2 exists); a 1e-6 floor guards empty degrees.
- A is never formed (HW x HW): ``L X = X - s * (P (lambda * (P^T (s * X))))`` with
  ``s = (P (lambda * P^T 1))^-1/2``, associativity only, so the cost is linear in HW.
- Theta is a 1x1 conv without bias + BN + ReLU; the residual keeps the block a drop-in.
H and W must be at least ``2 ** (levels - 1)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import int_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register


class CoordinateGraphReasoning(nn.Module):
    """One level: graph convolution over all pixels with a data-dependent Laplacian."""

    def __init__(self, channels: int, rd: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.phi = nn.Conv2d(channels, rd, 1)
        self.diag = nn.Conv2d(channels, rd, 1)
        self.theta = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        n, c, h, w = x.shape
        p = torch.relu(self.phi(x)).flatten(2)                                 # [N, M, HW]
        lam = torch.sigmoid(self.diag(x.mean((2, 3), keepdim=True))).flatten(1)  # [N, M]
        deg = torch.matmul(p.sum(-1).mul(lam).unsqueeze(1), p)                 # [N, 1, HW]
        s = torch.rsqrt(deg.clamp_min(self.eps))
        xs = x.flatten(2) * s                                                  # [N, C, HW]
        ax = torch.matmul(torch.matmul(xs, p.transpose(1, 2)) * lam.unsqueeze(1), p)
        lx = x.flatten(2) - ax * s                                             # L X
        return self.theta(lx.reshape(n, c, h, w))


class SpatialPyramidGraphReasoning(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 2,
                 rd_channels: int | None = None, levels: int = 3):
        super().__init__()
        levels = int_arg("levels", levels)
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        self.channels = channels
        self.levels = nn.ModuleList(CoordinateGraphReasoning(channels, rd) for _ in range(levels))
        self.min_size = 2 ** (levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] (H, W >= 2**(levels-1)) -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        if x.dim() != 4 or x.shape[-2] < self.min_size or x.shape[-1] < self.min_size:
            raise AttnDeployError(f"spygr input: expected [N, C, H, W] with H, W >= "
                                  f"{self.min_size}, got {tuple(x.shape)}")
        pyramid = [x]
        for _ in range(len(self.levels) - 1):
            pyramid.append(F.max_pool2d(pyramid[-1], 2))
        out = None
        for xi, level in zip(reversed(pyramid), reversed(self.levels)):
            y = level(xi)
            if out is not None:
                y = y + F.interpolate(out, size=xi.shape[-2:], mode="bilinear",
                                      align_corners=False)
            out = y
        return x + out


register(
    "spygr", SpatialPyramidGraphReasoning, title="Spatial Pyramid based Graph Reasoning",
    paper="SpyGR, CVPR20, arXiv:2003.10211", family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
    min_dims=lambda c: {"H": 2 ** (c["levels"] - 1), "W": 2 ** (c["levels"] - 1)},
)
