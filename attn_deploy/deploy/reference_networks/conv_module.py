"""mmcv's ``ConvModule`` and ``Scale`` in plain PyTorch, with mmcv's attribute names, so that the
reference networks' state_dict keys are the ones mmseg and mmdet checkpoints carry
(``<name>.conv.weight``, ``<name>.bn.running_mean``, ``<name>.scale``)."""
from __future__ import annotations

import torch
from torch import nn


class ConvModule(nn.Module):
    """conv -> BatchNorm (``bn``, optional) -> ReLU (``activate``, optional), mmcv's default
    order. As in mmcv, ``bias="auto"`` gives the conv a bias only when there is no norm.

    x [N, in_channels, H, W] -> [N, out_channels, H', W'] (H' = H for stride 1 and
    ``padding = dilation * (kernel_size // 2)``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, norm: bool = True, act: bool = True,
                 bias: bool | str = "auto"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              dilation, bias=(not norm) if bias == "auto" else bool(bias))
        if norm:
            self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        if hasattr(self, "activate"):
            x = self.activate(x)
        return x


class Scale(nn.Module):
    """mmcv's learnable scalar (a 0-d ``scale`` parameter): x -> x * scale."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
