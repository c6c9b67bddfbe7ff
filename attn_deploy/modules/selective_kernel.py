"""Selective Kernel (SK) unit.

Paper: Li, Wang, Hu, Yang, "Selective Kernel Networks", CVPR 2019, arXiv:1903.06586.
Official code: https://github.com/implus/SKNet (Caffe).

Split: M branches of grouped 3x3 convs (G = 32 groups) with dilation 1, 2, ..., M, i.e. the
receptive fields of 3x3, 5x5, ... kernels (the paper replaces 5x5 by a dilated 3x3), each
followed by BN and ReLU. Fuse: U = sum of the branches, s = GAP(U), z = ReLU(BN(W s)) with
d = max(C / r, L) channels (r = 16, L = 32). Select: per-branch fc layers A_m (d -> C), a
softmax across the M branches for every channel, and V = sum_m a_m * U_m.
Choices: when ``groups`` is not given, G = gcd(C, 32), the largest group count up to the
paper's 32 that divides C; an explicit ``groups`` must divide C. As in the paper's equations,
the fc layers have no bias (the reduction fc is followed by BN). The M selection fcs are one
1x1 conv d -> M*C (branch-major output), which is the same map as M separate fcs.
Constructor order: ``num_branches`` and ``groups`` come before the reduction settings
(unlike the library's usual channels / rd_* / layers order) because they define the unit's
structure, as in the paper's SK[M, G, r] notation; pass them by keyword.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attn_deploy.modules.arg_checks import divisor_arg, int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register


class SelectiveKernel(nn.Module):
    def __init__(self, channels: int = 64, num_branches: int = 2, groups: int | None = None,
                 rd_ratio: float = 1 / 16, rd_channels: int | None = None, rd_min: int = 32,
                 act_layer="relu"):
        super().__init__()
        channels = int_arg("channels", channels)
        num_branches = int_arg("num_branches", num_branches)
        groups = optional_int_arg("groups", groups)
        g = math.gcd(channels, 32) if groups is None else divisor_arg("groups", groups,
                                                                      "channels", channels)
        d = reduced_channels(channels, rd_ratio, rd_channels)
        rd_min = int_arg("rd_min", rd_min)
        d = d if rd_channels is not None else max(d, rd_min)
        self.channels, self.num_branches = channels, num_branches
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=dil, dilation=dil,
                                    groups=g, bias=False),
                          nn.BatchNorm2d(channels), create_act(act_layer))
            for dil in range(1, num_branches + 1))
        self.fc_reduce = nn.Conv2d(channels, d, 1, bias=False)
        self.bn = nn.BatchNorm2d(d)
        self.act = create_act(act_layer)
        self.fc_select = nn.Conv2d(d, num_branches * channels, 1, bias=False)
        self.select = nn.Softmax(dim=1)   # across branches, per channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], the attention-weighted sum of the branches."""
        check_nchw(x, self.channels)
        feats = torch.stack([branch(x) for branch in self.branches], 1)   # [N, M, C, H, W]
        s = feats.sum(1).mean((2, 3), keepdim=True)                        # [N, C, 1, 1]
        z = self.act(self.bn(self.fc_reduce(s)))                           # [N, d, 1, 1]
        logits = self.fc_select(z).unflatten(1, (self.num_branches, self.channels))
        return (feats * self.select(logits)).sum(1)


register(
    "sk", SelectiveKernel, title="Selective Kernel unit", paper="SKNet, CVPR19, arXiv:1903.06586",
    family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
