"""Global Reasoning unit (GloRe).

Paper: Chen, Rohrbach, Yan, Yan, Feng, Kalantidis, "Graph-Based Global Reasoning Networks",
CVPR 2019, arXiv:1811.12814. Official code: https://github.com/facebookresearch/GloRe.

Coordinate space -> interaction space: a 1x1 conv reduces x to S state channels, another 1x1
conv gives N projection maps B; the node features are ``V = X_state B^T`` [S x N]. Reasoning is
one graph convolution: a node-wise 1-D conv (adjacency, with bias) across the N nodes plus the
identity, ReLU, then a channel-wise 1-D conv (state update, no bias) across the S states.
Reverse projection with the same B back to [S x HW], a 1x1 conv (no bias) back to C channels,
BatchNorm, and the residual: ``y = x + BN(conv(Y B))``.
Choices from the official code: S = 2 * mid and N = mid (mid = channels / 4 here, the unit's
``num_mid``), BN eps = 1e-4, and ``normalize`` (scale V by 1 / HW) on, as the official code
advises when the input size is not fixed. The official code zero-initialises the BN ("should be
zero initialized"), making the unit an identity at start: ``zero_init_norm=True``; the
registered block uses False so that tests see the reasoning path.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register


class GraphConv1d(nn.Module):
    """One GCN layer on node features [B, S, N]: ``W_s relu(A_n V + V)``."""

    def __init__(self, num_state: int, num_node: int):
        super().__init__()
        self.node_conv = nn.Conv1d(num_node, num_node, 1)
        self.state_conv = nn.Conv1d(num_state, num_state, 1, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v: [B, S, N] -> [B, S, N]."""
        h = self.node_conv(v.transpose(1, 2)).transpose(1, 2) + v
        return self.state_conv(torch.relu(h))


class GlobalReasoning(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 4,
                 rd_channels: int | None = None, normalize: bool = True,
                 zero_init_norm: bool = True):
        super().__init__()
        mid = reduced_channels(channels, rd_ratio, rd_channels)
        normalize = bool_arg("normalize", normalize)
        zero_init_norm = bool_arg("zero_init_norm", zero_init_norm)
        self.num_state, self.num_node, self.normalize = 2 * mid, mid, normalize
        self.conv_state = nn.Conv2d(channels, self.num_state, 1)
        self.conv_proj = nn.Conv2d(channels, self.num_node, 1)
        self.gcn = GraphConv1d(self.num_state, self.num_node)
        self.conv_extend = nn.Conv2d(self.num_state, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels, eps=1e-4)
        if zero_init_norm:
            nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.conv_state.in_channels)
        n, _, h, w = x.shape
        state = self.conv_state(x).flatten(2)                 # [B, S, HW]
        proj = self.conv_proj(x).flatten(2)                   # [B, N, HW]
        nodes = torch.matmul(state, proj.transpose(1, 2))     # [B, S, N]
        if self.normalize:
            nodes = nodes / state.shape[-1]
        nodes = self.gcn(nodes)
        y = torch.matmul(nodes, proj).reshape(n, self.num_state, h, w)
        return x + self.norm(self.conv_extend(y))


register(
    "glore", GlobalReasoning, title="Global Reasoning unit",
    paper="GloRe, CVPR19, arXiv:1811.12814", family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 14, "W": 14}, defaults={"zero_init_norm": False},
)
