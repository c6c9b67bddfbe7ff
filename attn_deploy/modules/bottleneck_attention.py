"""Bottleneck Attention Module (BAM).

Paper: Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018, arXiv:1807.06514.
Official code: https://github.com/Jongchan/attention-module (PyTorch).

Two parallel branches whose maps are broadcast to [N, C, H, W] and combined by a sum (paper
Eq. 1-2):  y = x * (1 + sigmoid(Mc(x) + Ms(x))).
  Mc: global average pooling, MLP C -> C/r -> C (one hidden layer), BN.
  Ms: 1x1 conv C -> C/r, two 3x3 convs with dilation d, 1x1 conv C/r -> 1, BN.
Reduction r = 16 and dilation d = 4, the paper's choices.
Choices where the paper is silent, as the official code does: every hidden layer (the MLP's
hidden layer, the 1x1 reduction and both dilated convs) is followed by BN + ReLU, and all
linear/conv layers carry biases. The paper's output BN on each branch is kept (``out_norm``);
``out_norm=False`` gives the official code's branches exactly. The official code multiplies
the two maps inside the sigmoid; this block sums them, as the paper states.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg, int_arg
from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register


def _conv_bn_act(cin: int, cout: int, kernel_size: int, dilation: int, act_layer) -> list:
    pad = dilation * (kernel_size - 1) // 2
    return [nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation),
            nn.BatchNorm2d(cout), create_act(act_layer)]


class BottleneckAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 16,
                 rd_channels: int | None = None, dilation: int = 4, num_dilated: int = 2,
                 out_norm: bool = True, act_layer="relu"):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        dilation = int_arg("dilation", dilation)
        num_dilated = int_arg("num_dilated", num_dilated, min=0)
        out_norm = bool_arg("out_norm", out_norm)
        self.channels = channels
        self.channel_branch = nn.Sequential(
            *_conv_bn_act(channels, rd, 1, 1, act_layer), nn.Conv2d(rd, channels, 1),
            nn.BatchNorm2d(channels) if out_norm else nn.Identity())
        dilated = [m for _ in range(num_dilated) for m in _conv_bn_act(rd, rd, 3, dilation,
                                                                        act_layer)]
        self.spatial_branch = nn.Sequential(
            *_conv_bn_act(channels, rd, 1, 1, act_layer), *dilated, nn.Conv2d(rd, 1, 1),
            nn.BatchNorm2d(1) if out_norm else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W] = x * (1 + sigmoid(Mc [N,C,1,1] + Ms [N,1,H,W]))."""
        check_nchw(x, self.channels)
        mc = self.channel_branch(x.mean((2, 3), keepdim=True))
        ms = self.spatial_branch(x)
        return x * (1 + torch.sigmoid(mc + ms))


register(
    "bam", BottleneckAttention, title="Bottleneck Attention Module",
    paper="BAM, BMVC18, arXiv:1807.06514", family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
