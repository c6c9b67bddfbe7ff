"""CCNet for semantic segmentation, laid out like mmseg's ``EncoderDecoder`` with a ResNetV1c
backbone, ``CCHead`` (recurrence 2) and an ``FCNHead`` auxiliary head, so that an mmseg 1.x
checkpoint (``backbone.stem.0.weight``, ``decode_head.cca.query_conv.weight``,
``decode_head.cca.gamma.scale``, ``auxiliary_head.conv_seg.bias``, ...) loads key for key.

Huang, Wang, Huang, Huang, Wei, Liu, "CCNet: Criss-Cross Attention for Semantic Segmentation",
ICCV 2019 (arXiv:1811.11721); official code https://github.com/speedinghzl/CCNet, mmseg's
``configs/ccnet``.

Head (mmseg's CCHead, an FCNHead with two convs and ``concat_input``): 3x3 ConvModule to
``channels``, mmcv's one-step CrissCrossAttention applied ``recurrence`` = 2 times with the same
weights, 3x3 ConvModule, concatenation with the head's input and a 3x3 ConvModule, dropout
(identity at inference), 1x1 ``conv_seg`` to the classes; logits resized bilinearly
(align_corners=False) to the input size, as mmseg's inference does. The auxiliary FCN head on
stage 3 is built (its weights are in every mmseg CCNet checkpoint) but, as in mmseg's inference,
not run. Defaults: a ResNetV1c-18 backbone at output stride 8 (strides (1, 2, 1, 1), dilations
(1, 1, 2, 4)), head widths of mmseg's ResNet-18 configs (512 -> 128, auxiliary 256 -> 64),
19 classes (Cityscapes).

The criss-cross step is attn_deploy's op (one ``attn_deploy::CrissCrossAttention`` node per step
in ONNX); everything else is standard ONNX. Any input size exports and runs (strided convs round
up; the logits are resized to the input).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.deploy.reference_networks.conv_module import ConvModule, Scale
from attn_deploy.deploy.reference_networks.resnet import ResNet
from attn_deploy.ops import criss_cross_attention


class CrissCrossAttention(nn.Module):
    """mmcv's criss-cross attention layer (one step): x [N, C, H, W] -> gamma * attention + x.
    Query and key: 1x1 convs to C/8; value: 1x1 conv to C; ``gamma``: a Scale starting at 0."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.key_conv = nn.Conv2d(in_channels, in_channels // 8, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = Scale(0.0)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = criss_cross_attention(self.query_conv(x), self.key_conv(x), self.value_conv(x))
        return self.gamma(out) + x


class FCNHead(nn.Module):
    """mmseg's FCNHead: ``num_convs`` 3x3 ConvModules (``convs``), optionally concatenated with
    the input and fused (``conv_cat``), dropout and a 1x1 ``conv_seg``.
    feats (one per backbone stage) -> logits [N, num_classes, h, w] of feats[in_index]."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 2,
                 concat_input: bool = True, in_index: int = -1, dropout_ratio: float = 0.1):
        super().__init__()
        self.in_index, self.concat_input = in_index, concat_input
        convs = [ConvModule(in_channels if i == 0 else channels, channels, 3, padding=1)
                 for i in range(num_convs)]
        self.convs = nn.Sequential(*convs) if convs else nn.Identity()
        if concat_input:
            self.conv_cat = ConvModule(in_channels + channels, channels, 3, padding=1)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.dropout = nn.Dropout2d(dropout_ratio)

    def fuse(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(self.dropout(out))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_index]
        return self.fuse(x, self.convs(x))


class CCHead(FCNHead):
    """mmseg's CCHead: the FCN head's two convs with criss-cross attention, applied
    ``recurrence`` times with shared weights, between them."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, recurrence: int = 2,
                 in_index: int = -1, dropout_ratio: float = 0.1):
        super().__init__(in_channels, channels, num_classes, num_convs=2, concat_input=True,
                         in_index=in_index, dropout_ratio=dropout_ratio)
        self.recurrence = recurrence
        self.cca = CrissCrossAttention(channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_index]
        out = self.convs[0](x)
        for _ in range(self.recurrence):
            out = self.cca(out)
        return self.fuse(x, self.convs[1](out))


class CCNet(nn.Module):
    """image [N, in_channels, H, W] -> logits [N, num_classes, H, W]."""

    def __init__(self, num_classes: int = 19, in_channels: int = 3, stem_channels: int = 64,
                 base_channels: int = 64, stage_blocks: Sequence[int] = (2, 2, 2, 2),
                 channels: int = 128, aux_channels: int = 64, recurrence: int = 2,
                 auxiliary_head: bool = True):
        super().__init__()
        self.backbone = ResNet(in_channels, stem_channels, base_channels, stage_blocks,
                               strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), deep_stem=True,
                               contract_dilation=True)
        widths = self.backbone.out_channels
        self.decode_head = CCHead(widths[3], channels, num_classes, recurrence, in_index=3)
        if auxiliary_head:
            self.auxiliary_head = FCNHead(widths[2], aux_channels, num_classes, num_convs=1,
                                          concat_input=False, in_index=2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [N, C, H, W] -> logits [N, num_classes, H, W] (from stride-8 logits)."""
        logits = self.decode_head(self.backbone(image))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                             align_corners=False)


def ccnet_resnet(**kwargs) -> CCNet:
    """CCNet with a ResNetV1c backbone (``attn_deploy.deploy.reference_networks:ccnet_resnet``),
    in eval mode; ``kwargs`` as :class:`CCNet`."""
    return CCNet(**kwargs).eval()
