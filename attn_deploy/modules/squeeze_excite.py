"""Squeeze-and-Excitation (SE) block.

Paper: Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.
Official code: https://github.com/hujie-frank/SENet (Caffe).

Squeeze: global average pooling to [N, C, 1, 1]. Excitation: a bottleneck of two 1x1 convs
(equivalent to the paper's two FC layers) with reduction ratio r = 16, ReLU between, sigmoid gate.
Choice where the paper is silent: the bottleneck is floor(C * rd_ratio) (C // r), at least 1, and the FC layers
carry biases as in the official Caffe prototxt.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 16,
                 rd_channels: int | None = None, act_layer="relu", gate_layer="sigmoid"):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = create_act(act_layer)
        self.fc2 = nn.Conv2d(rd, channels, 1)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], each channel scaled by its gate."""
        check_nchw(x, self.channels)
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


register(
    "se", SqueezeExcite, title="Squeeze-and-Excitation", paper="SENet, CVPR18, arXiv:1709.01507",
    family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
