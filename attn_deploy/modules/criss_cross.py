"""Recurrent Criss-Cross Attention (CCNet's CCA module, applied R times with shared weights).

Paper: Huang, Wang, Huang, Huang, Wei, Liu, "CCNet: Criss-Cross Attention for Semantic
Segmentation", ICCV 2019, arXiv:1811.11721. Official code: https://github.com/speedinghzl/CCNet.

Query and key are 1x1 convs to C/8 channels, value a 1x1 conv to C channels (all with bias, as
in the official code). Each pixel attends over the H + W - 1 positions of its row and column with
one softmax (``attn_deploy.ops.criss_cross_attention``, exported as one
``attn_deploy::CrissCrossAttention`` node), and ``y = gamma * attention + x``. The module is
applied R = 2 times with the same weights (the paper's recurrent RCCA, the official
``for i in range(recurrence)`` loop), so every pixel receives context from the whole image.

``gamma_init`` keeps the paper's 0 (the block starts as an identity); the registry builds the
block with ``gamma_init=0.5`` so that an untrained block's export and parity checks exercise the
attention path. The official RCCA head's surrounding 3x3 convs and bottleneck are segmentation-head
layers, not part of the attention block, and are left out.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import float_arg, int_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register
from attn_deploy.ops import criss_cross_attention


class CrissCrossAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 8,
                 rd_channels: int | None = None, recurrence: int = 2, gamma_init: float = 0.0):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        recurrence = int_arg("recurrence", recurrence)
        gamma_init = float_arg("gamma_init", gamma_init)
        self.channels, self.recurrence = channels, recurrence
        self.query = nn.Conv2d(channels, rd, 1)
        self.key = nn.Conv2d(channels, rd, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """One criss-cross step: x [N, C, H, W] -> gamma * attention + x, [N, C, H, W]."""
        out = criss_cross_attention(self.query(x), self.key(x), self.value(x))
        return self.gamma * out + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], after ``recurrence`` shared-weight steps."""
        check_nchw(x, self.channels)
        for _ in range(self.recurrence):
            x = self.attend(x)
        return x


register(
    "cca", CrissCrossAttention, title="Criss-Cross Attention (recurrent, R=2)",
    paper="CCNet, ICCV19, arXiv:1811.11721", family="spatial", export_path="plugin",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12}, defaults={"gamma_init": 0.5},
)
