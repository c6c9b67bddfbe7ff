"""Global Context (GC) block.

Paper: Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
Beyond", ICCV 2019 Workshops, arXiv:1904.11492. Official code: https://github.com/xvjiarui/GCNet
(the ContextBlock of mmcv).

Context modeling by attention pooling: a 1x1 conv to one channel, softmax over all H*W
positions, and the attention-weighted sum of x -> a [N, C, 1, 1] context. Transform: a
bottleneck 1x1 conv C -> C/r, LayerNorm over [C/r, 1, 1], ReLU, 1x1 conv C/r -> C. Fusion by
addition (``fusion="add"``, the paper's best setting) or by a sigmoid gate (``fusion="mul"``).
Reduction r = 16 (the paper's default).
Choices where the paper is silent, as the official code does: the convs carry biases, the mask
conv is Kaiming-initialised (fan_in) and the transform's last conv is zero-initialised, so that
a new block starts as the identity. That init hides errors in a parity test, so the registered
block is created with ``zero_init_last=False`` (the last conv keeps PyTorch's default init).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg, choice_arg
from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register

FUSIONS = ("add", "mul")


class GlobalContext(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 16,
                 rd_channels: int | None = None, fusion: str = "add", act_layer="relu",
                 zero_init_last: bool = True):
        super().__init__()
        fusion = choice_arg("fusion", fusion, FUSIONS)
        zero_init_last = bool_arg("zero_init_last", zero_init_last)
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        self.channels, self.fusion = channels, fusion
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, rd, 1), nn.LayerNorm([rd, 1, 1]), create_act(act_layer),
            nn.Conv2d(rd, channels, 1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        if zero_init_last:
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], fused with its global context."""
        check_nchw(x, self.channels)
        attn = self.conv_mask(x).flatten(2).softmax(-1)               # [N, 1, HW]
        context = torch.matmul(x.flatten(2), attn.transpose(1, 2))    # [N, C, 1]
        t = self.transform(context.unsqueeze(-1))                     # [N, C, 1, 1]
        return x + t if self.fusion == "add" else x * torch.sigmoid(t)


register(
    "gc", GlobalContext, title="Global Context block",
    paper="GCNet, ICCV19 Workshops, arXiv:1904.11492", family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16}, defaults={"zero_init_last": False},
)
