"""A feature pyramid with CARAFE upsampling, laid out like an mmdet 3.x detector's ``backbone``
(ResNet) and ``neck`` (``FPN_CARAFE``), so that the backbone and neck keys of an mmdet checkpoint
(``neck.lateral_convs.0.conv.weight``, ``neck.upsample_modules.0.content_encoder.weight``, ...)
load key for key; the detection heads are left out (their keys are unexpected, see
``allow_unexpected``).

FPN: Lin, Dollar, Girshick, He, Hariharan, Belongie, "Feature Pyramid Networks for Object
Detection", CVPR 2017 (arXiv:1612.03144). CARAFE: Wang, Chen, Xu, Liu, Loy, Lin, "CARAFE:
Content-Aware ReAssembly of FEatures", ICCV 2019 (arXiv:1905.02188); mmdet's
``configs/carafe`` (FPN_CARAFE with up_kernel 5, up_group 1, encoder_kernel 3, compressed
channels 64, no norm or activation in the FPN convs).

Neck (mmdet's FPN_CARAFE, start_level 0, end_level -1): a 1x1 lateral conv per backbone level
and, for each extra level (``num_outs`` beyond the backbone's), a 3x3 stride-2 conv on the last
backbone map; top-down, each level adds the CARAFE x2 upsampling of the level above (block
``carafe``, one ``attn_deploy::CARAFE`` node); a 3x3 conv per level gives the outputs. Like mmdet,
an upsampled map larger than its lateral (a level of odd size) is cropped to it: a branch on the
sizes, which torch.export can only export when the sizes make it fixed. mmdet pads its inputs
to a multiple of 64 (``pad_size_divisor=64``); with five levels (strides 4 to 64) every level then
has an even size and the branch never crops. Export with ``multiples = { H = 64, W = 64 }``
(``--multiple H=64,W=64``).

Defaults: a ResNet-18 backbone (mmdet's ResNet, 7x7 stem) and mmdet's neck widths (256 channels,
five outputs, strides 4, 8, 16, 32, 64).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from attn_deploy.deploy.reference_networks.conv_module import ConvModule
from attn_deploy.deploy.reference_networks.resnet import ResNet
from attn_deploy.modules.carafe import CARAFEUpsampler


def add_cropped(lateral: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
    """lateral [N, C, h, w] + upsampled [N, C, >= h, >= w] cropped to h x w (mmdet's
    ``tensor_add``): the upsampled map is one row/column larger below a level of odd size."""
    if lateral.shape == upsampled.shape:
        return lateral + upsampled
    return lateral + upsampled[:, :, :lateral.shape[2], :lateral.shape[3]]


class FPNCARAFE(nn.Module):
    """feats (one [N, in_channels[i], H / 2^(i+2), W / 2^(i+2)] per level) -> ``num_outs`` maps
    [N, out_channels, H / 2^(l+2), W / 2^(l+2)]."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, num_outs: int = 5,
                 up_kernel: int = 5, up_group: int = 1, encoder_kernel: int = 3,
                 encoder_dilation: int = 1, compressed_channels: int = 64):
        super().__init__()
        levels = len(in_channels)
        if num_outs < levels:
            raise ValueError(f"num_outs ({num_outs}) must be >= the backbone levels ({levels})")
        self.lateral_convs, self.fpn_convs = nn.ModuleList(), nn.ModuleList()
        self.upsample_modules = nn.ModuleList()
        for i in range(num_outs):
            if i < levels:  # lateral 1x1 on a backbone level
                lateral = ConvModule(in_channels[i], out_channels, 1, norm=False, act=False)
            else:  # an extra level: 3x3 stride-2 conv (the first on the last backbone map)
                lateral = ConvModule(in_channels[-1] if i == levels else out_channels,
                                     out_channels, 3, stride=2, padding=1, norm=False,
                                     act=False)
            self.lateral_convs.append(lateral)
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1,
                                             norm=False, act=False))
            if i:  # mmdet's order: backbone levels' upsamplers, then the extra levels'
                self.upsample_modules.append(CARAFEUpsampler(
                    out_channels, 2, up_kernel, up_group, encoder_kernel, encoder_dilation,
                    compressed_channels))
        self.levels = levels
        for conv in self.lateral_convs.modules():  # mmdet's init: xavier uniform, zero bias
            if isinstance(conv, nn.Conv2d):
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
        for conv in self.fpn_convs.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        laterals = []
        for i, conv in enumerate(self.lateral_convs):
            source = feats[i] if i < self.levels else (
                feats[-1] if i == self.levels else laterals[-1])
            laterals.append(conv(source))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = add_cropped(laterals[i - 1],
                                          self.upsample_modules[i - 1](laterals[i]))
        return tuple(conv(x) for conv, x in zip(self.fpn_convs, laterals))


class CARAFEPyramid(nn.Module):
    """image [N, in_channels, H, W] -> ``num_outs`` pyramid maps [N, out_channels, H / 2^(l+2),
    W / 2^(l+2)], l = 0 .. num_outs - 1 (H, W multiples of 2^(num_outs + 1) export)."""

    def __init__(self, in_channels: int = 3, base_channels: int = 64,
                 stage_blocks: Sequence[int] = (2, 2, 2, 2), out_channels: int = 256,
                 num_outs: int = 5, up_kernel: int = 5, up_group: int = 1,
                 encoder_kernel: int = 3, compressed_channels: int = 64):
        super().__init__()
        self.backbone = ResNet(in_channels, base_channels, base_channels, stage_blocks)
        self.neck = FPNCARAFE(self.backbone.out_channels, out_channels, num_outs, up_kernel,
                              up_group, encoder_kernel, 1, compressed_channels)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.neck(self.backbone(image))


def fpn_carafe_resnet(**kwargs) -> CARAFEPyramid:
    """ResNet + FPN_CARAFE (``attn_deploy.deploy.reference_networks:fpn_carafe_resnet``), in
    eval mode; ``kwargs`` as :class:`CARAFEPyramid`."""
    return CARAFEPyramid(**kwargs).eval()
