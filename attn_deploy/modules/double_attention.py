"""Double Attention (A^2) block.

Paper: Chen, Kalantidis, Li, Yan, Feng, "A^2-Nets: Double Attention Networks", NeurIPS 2018,
arXiv:1810.11579. No official code was released by the authors; the public reimplementations
agree with the paper on the structure below.

Three 1x1 convs (with bias) read the input ``X [C, HW]``: features ``A = phi(X) [c_m, HW]``,
attention maps ``B = theta(X) [c_n, HW]`` and attention vectors ``V = rho(X) [c_n, HW]``.

- Gather (attention-weighted bilinear pooling): ``G = A softmax(B)^T [c_m, c_n]``, each of the
  n attention maps softmax-normalised over the HW positions, so every descriptor is a convex
  combination of features.
- Distribute: ``Z = G softmax(V) [c_m, HW]``, each position's attention vector softmax-normalised
  over the n descriptors (the paper's choice; some reimplementations normalise over positions
  instead, which is not the paper's distribution step).

The block then projects ``Z`` back to C channels with a 1x1 conv (with bias) and adds the input
(residual), as the paper's A^2 block in a ResNet does. Defaults ``c_m = c_n = C/4``
(``rd_ratio``); ``rd_channels`` sets c_m and ``num_descriptors`` sets c_n.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import optional_int_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register


class DoubleAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 4,
                 rd_channels: int | None = None, num_descriptors: int | None = None):
        super().__init__()
        c_m = reduced_channels(channels, rd_ratio, rd_channels)
        num_descriptors = optional_int_arg("num_descriptors", num_descriptors)
        c_n = c_m if num_descriptors is None else num_descriptors
        self.channels = channels
        self.conv_a = nn.Conv2d(channels, c_m, 1)   # features A
        self.conv_b = nn.Conv2d(channels, c_n, 1)   # attention maps B (gather)
        self.conv_v = nn.Conv2d(channels, c_n, 1)   # attention vectors V (distribute)
        self.proj = nn.Conv2d(c_m, channels, 1)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, C, H, W] -> (gather maps [N, c_n, HW], softmax over HW;
        distribute vectors [N, c_n, HW], softmax over c_n)."""
        gather = self.conv_b(x).flatten(2).softmax(dim=-1)
        distribute = self.conv_v(x).flatten(2).softmax(dim=1)
        return gather, distribute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        gather, distribute = self.attention(x)
        a = self.conv_a(x).flatten(2)                                # [N, c_m, HW]
        descriptors = torch.matmul(a, gather.transpose(1, 2))        # [N, c_m, c_n]
        z = torch.matmul(descriptors, distribute)                    # [N, c_m, HW]
        z = z.reshape(x.shape[0], -1, x.shape[2], x.shape[3])
        return self.proj(z) + x


register(
    "a2", DoubleAttention, title="Double Attention block",
    paper="A2-Nets, NeurIPS18, arXiv:1810.11579",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
