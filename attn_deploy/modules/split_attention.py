"""Split-Attention convolution (the block of ResNeSt).

Paper: Zhang et al., "ResNeSt: Split-Attention Networks", arXiv:2004.08955.
Official code: https://github.com/zhanghang1989/ResNeSt (``SplAtConv2d``).

The input's channels are split into K cardinal groups, each into R splits (radix), by one
grouped k x k conv (K*R groups) producing R*C channels, with BN and ReLU. The R splits are
summed, globally average-pooled, passed through fc1 (grouped by K, with BN and ReLU) and fc2
(grouped by K) to R*C logits; rSoftMax normalises them across the R splits of each cardinal
group (R = 1 degenerates to a sigmoid gate), and the output is the attention-weighted sum of
the splits. Stride 1, so y has x's shape. Defaults R = 2, K = 1, as ResNeSt.
Choices where the paper is silent, as the official code does: the hidden width is
max(C * R / 4, 32) (rounded up to a multiple of K); the big conv has no bias (BN follows) and
fc1/fc2 have biases; channels are laid out radix-major (split r is channels [r*C, (r+1)*C)),
and fc2's output cardinal-major ([K, R, C/K]), so official weights load unchanged.
Constructor order: ``radix``, ``cardinality`` and ``kernel_size`` come before the reduction
settings (unlike the library's usual channels / rd_* / layers order) because they define the
block's structure, as ResNeSt's own signature does; pass them by keyword.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import int_arg
from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register


class RadixSoftmax(nn.Module):
    """rSoftMax: logits [N, R*C, 1, 1] ordered (K, R, C/K) -> weights [N, R, C, 1, 1].

    Softmax across the R splits within each cardinal group; a sigmoid when R = 1.
    """

    def __init__(self, radix: int, cardinality: int):
        super().__init__()
        self.radix, self.cardinality = radix, cardinality

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.radix == 1:
            return torch.sigmoid(logits).unsqueeze(1)
        a = logits.unflatten(1, (self.cardinality, self.radix, -1)).softmax(2)  # [N,K,R,C/K,1,1]
        return a.transpose(1, 2).flatten(2, 3)                                # [N,R,C,1,1]


class SplitAttention(nn.Module):
    def __init__(self, channels: int = 64, radix: int = 2, cardinality: int = 1,
                 kernel_size: int = 3, rd_ratio: float = 1 / 4, rd_channels: int | None = None,
                 rd_min: int = 32, act_layer="relu"):
        super().__init__()
        channels = int_arg("channels", channels)
        radix, cardinality = int_arg("radix", radix), int_arg("cardinality", cardinality)
        if channels % (radix * cardinality):
            raise AttnDeployError(f"channels: expected a multiple of radix * cardinality "
                                  f"({radix} * {cardinality}), got {channels}")
        kernel_size = int_arg("kernel_size", kernel_size, odd=True)
        rd_min = int_arg("rd_min", rd_min)
        if rd_channels is None:
            rd = max(reduced_channels(channels * radix, rd_ratio, None), rd_min)
            rd = -(-rd // cardinality) * cardinality
        else:
            rd = reduced_channels(channels, rd_ratio, rd_channels)
            if rd % cardinality:
                raise AttnDeployError(f"rd_channels must be divisible by cardinality "
                                      f"({cardinality}), got {rd_channels}")
        self.channels, self.radix = channels, radix
        self.conv = nn.Conv2d(channels, channels * radix, kernel_size, padding=kernel_size // 2,
                              groups=cardinality * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.act0 = create_act(act_layer)
        self.fc1 = nn.Conv2d(channels, rd, 1, groups=cardinality)
        self.bn1 = nn.BatchNorm2d(rd)
        self.act1 = create_act(act_layer)
        self.fc2 = nn.Conv2d(rd, channels * radix, 1, groups=cardinality)
        self.rsoftmax = RadixSoftmax(radix, cardinality)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], the attention-weighted sum of the R splits."""
        check_nchw(x, self.channels)
        splits = self.act0(self.bn0(self.conv(x))).unflatten(1, (self.radix, self.channels))
        gap = splits.sum(1).mean((2, 3), keepdim=True)                     # [N, C, 1, 1]
        logits = self.fc2(self.act1(self.bn1(self.fc1(gap))))              # [N, R*C, 1, 1]
        return (splits * self.rsoftmax(logits)).sum(1)


register(
    "split_attn", SplitAttention, title="Split-Attention", paper="ResNeSt, arXiv:2004.08955",
    family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
