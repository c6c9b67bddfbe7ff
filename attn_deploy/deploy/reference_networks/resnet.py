"""ResNet backbones laid out like mmseg's and mmdet's ``ResNet`` / ``ResNetV1c`` (BasicBlock,
the ResNet-18/34 block), with their module names (``stem.0``, ``conv1``/``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0``), so that mmseg/mmdet checkpoints map onto them key for key.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385); ResNetV1c's deep stem (three 3x3 convs) from Bag of Tricks (arXiv:1812.01187).
Dilated stages follow mmseg's ``ResLayer``: with ``contract_dilation`` the first block of a stage
with dilation d > 1 uses d // 2 (mmseg's CCNet, PSPNet, ... configs: strides (1, 2, 1, 1),
dilations (1, 1, 2, 4): output stride 8). In a BasicBlock only the first conv is dilated.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """x [N, inplanes, H, W] -> [N, planes, ceil(H / stride), ceil(W / stride)]."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _res_layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int,
               contract_dilation: bool) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                   nn.BatchNorm2d(planes))
    first = dilation // 2 if contract_dilation and dilation > 1 else dilation
    layers = [BasicBlock(inplanes, planes, stride, first, downsample)]
    layers += [BasicBlock(planes, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """image [N, in_channels, H, W] -> one feature map per stage in ``out_indices``:
    stage i has ``base_channels * 2**i`` channels. ``deep_stem=True`` is mmseg's ResNetV1c
    (``stem``: three 3x3 conv-BN-ReLU), otherwise the 7x7 ``conv1``/``bn1`` stem; a 3x3 stride-2
    max pool follows either (total stride 4 before ``layer1``)."""

    def __init__(self, in_channels: int = 3, stem_channels: int = 64, base_channels: int = 64,
                 stage_blocks: Sequence[int] = (2, 2, 2, 2),
                 strides: Sequence[int] = (1, 2, 2, 2), dilations: Sequence[int] = (1, 1, 1, 1),
                 deep_stem: bool = False, contract_dilation: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        if not len(stage_blocks) == len(strides) == len(dilations):
            raise ValueError(f"stage_blocks, strides and dilations need one entry per stage, "
                             f"got {stage_blocks}, {strides}, {dilations}")
        self.deep_stem, self.out_indices = deep_stem, tuple(out_indices)
        if deep_stem:
            half = stem_channels // 2
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, half, 3, 2, 1, bias=False), nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, half, 3, 1, 1, bias=False), nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                nn.Conv2d(half, stem_channels, 3, 1, 1, bias=False),
                nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(stem_channels)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, self.res_layers = stem_channels, []
        for i, (blocks, stride, dilation) in enumerate(zip(stage_blocks, strides, dilations)):
            planes = base_channels * 2 ** i
            self.add_module(f"layer{i + 1}", _res_layer(inplanes, planes, blocks, stride,
                                                        dilation, contract_dilation))
            self.res_layers.append(f"layer{i + 1}")
            inplanes = planes
        self.out_channels = [base_channels * 2 ** i for i in self.out_indices]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image [N, C, H, W] -> tuple of [N, base_channels * 2**i, H / s_i, W / s_i]."""
        x = self.stem(image) if self.deep_stem else self.relu(self.bn1(self.conv1(image)))
        x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
