"""Self-Calibrated Convolution (SC-Conv).

Paper: Liu, Hou, Cheng, Wang, Feng, "Improving Convolutional Networks with Self-Calibrated
Convolutions", CVPR 2020. Official code: https://github.com/backseason/SCNet.

The input channels are split in two halves. The first half X1 is self-calibrated:
``T1 = up(K2(avgpool_r(X1)))`` (average pool with kernel = stride = r, r = 4, a 3x3 conv K2,
nearest upsampling back to the input size), ``Y1' = K3(X1) * sigmoid(X1 + T1)`` and
``Y1 = K4(Y1')``. The second half keeps a plain 3x3 conv: ``Y2 = K1(X2)``. Output
``[Y1, Y2]`` (channel concat), same shape as the input.

Choices from the official code: every K is a 3x3 conv without bias followed by BatchNorm; the
pooling is ``AvgPool2d(r, r)`` (floor mode, so H, W >= r) and the upsampling is
``F.interpolate(..., size=input size)`` (nearest), so any H, W >= r works, multiples of r or
not. The ReLUs around the unit belong to the SCNet bottleneck, not to SC-Conv, and are not here.
Export: AveragePool with a fixed kernel/stride and Resize to the runtime shape are both
shape-agnostic, so the eager form exports as is (checked at sizes not divisible by r).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import divisor_arg, int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


def _conv_bn(channels: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=groups, bias=False),
                         nn.BatchNorm2d(channels))


class SelfCalibratedConv(nn.Module):
    def __init__(self, channels: int = 64, pooling_r: int = 4, groups: int = 1):
        super().__init__()
        channels = int_arg("channels", channels, min=2)
        if channels % 2:
            raise AttnDeployError(f"channels: expected an even int >= 2 (split in two halves), "
                                  f"got {channels}")
        half = channels // 2
        groups = divisor_arg("groups", int_arg("groups", groups), "channels / 2", half)
        pooling_r = int_arg("pooling_r", pooling_r)
        self.pooling_r = pooling_r
        self.k1 = _conv_bn(half, groups)
        self.k2 = nn.Sequential(nn.AvgPool2d(pooling_r, pooling_r), _conv_bn(half, groups))
        self.k3 = _conv_bn(half, groups)
        self.k4 = _conv_bn(half, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] (H, W >= pooling_r) -> [N, C, H, W]."""
        check_nchw(x, 2 * self.k1[0].in_channels)
        if x.shape[-2] < self.pooling_r or x.shape[-1] < self.pooling_r:
            raise AttnDeployError(f"scconv input: H and W must be >= pooling_r = "
                                  f"{self.pooling_r}, got {tuple(x.shape)}")
        x1, x2 = torch.chunk(x, 2, dim=1)
        t1 = F.interpolate(self.k2(x1), size=x1.shape[-2:], mode="nearest")
        y1 = self.k4(self.k3(x1) * torch.sigmoid(x1 + t1))
        return torch.cat([y1, self.k1(x2)], 1)


register(
    "scconv", SelfCalibratedConv, title="Self-Calibrated Convolution",
    paper="SCNet, CVPR20 (Liu et al.)", family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 14, "W": 14},
    min_dims=lambda c: {"H": c["pooling_r"], "W": c["pooling_r"]},
)
