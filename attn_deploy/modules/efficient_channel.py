"""Efficient Channel Attention (ECA).

Paper: Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, arXiv:1910.03151.
Official code: https://github.com/BangguWu/ECANet (PyTorch).

Global average pooling to one value per channel, then a 1-D convolution of kernel size k across
the channel axis (local cross-channel interaction, no dimensionality reduction), then a sigmoid
gate. k is adaptive: t = int(|log2(C)/gamma + b/gamma|), k = t if t is odd else t + 1, with
gamma = 2 and b = 1 (paper Eq. 12 and the official code).
Choices where the paper is silent, as the official code does: the 1-D conv has no bias and zero
"same" padding of (k - 1) / 2 at both ends of the channel axis.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attn_deploy.modules.arg_checks import float_arg, int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw, create_act
from attn_deploy.modules.registry import register


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """ECA's adaptive kernel size: the odd number nearest above |(log2(C) + b) / gamma|."""
    channels = int_arg("channels", channels)
    gamma = float_arg("gamma", gamma, min=0, min_open=True)
    beta = float_arg("beta", beta)
    t = int(abs(math.log2(channels) / gamma + beta / gamma))
    return t if t % 2 else t + 1


class EfficientChannelAttention(nn.Module):
    def __init__(self, channels: int = 64, kernel_size: int | None = None, gamma: float = 2,
                 beta: float = 1, gate_layer="sigmoid"):
        super().__init__()
        # odd: the output keeps C channels only with symmetric padding
        kernel_size = optional_int_arg("kernel_size", kernel_size, odd=True)
        k = eca_kernel_size(channels, gamma, beta) if kernel_size is None else kernel_size
        self.channels = int_arg("channels", channels)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], each channel scaled by its gate."""
        check_nchw(x, self.channels)
        s = x.mean((2, 3)).unsqueeze(1)                # [N, 1, C]: channels as a 1-D signal
        g = self.gate(self.conv(s))                    # [N, 1, C]
        return x * g.transpose(1, 2).unsqueeze(-1)     # gate as [N, C, 1, 1]


register(
    "eca", EfficientChannelAttention, title="Efficient Channel Attention",
    paper="ECA-Net, CVPR20, arXiv:1910.03151", family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
