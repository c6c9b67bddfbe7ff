"""Two small full models built from attn_deploy's blocks, for the export recipes in ``export/``.

- :func:`ccnet_small`: a CCNet-style segmentation network (Huang et al., ICCV 2019,
  arXiv:1811.11721): a stride-8 convolutional backbone, the RCCA head of the official code
  (3x3 conv to C/4, criss-cross attention applied R = 2 times with shared weights, 3x3 conv,
  concatenation with the head's input, 3x3 bottleneck, 1x1 classifier) and bilinear upsampling
  of the logits to the input size. Any input size works (strided convs round up).
- :func:`carafe_fpn_small`: a detector neck with CARAFE upsampling (FPN, Lin et al. CVPR 2017,
  with the top-down nearest upsampling replaced by CARAFE as in Wang et al., ICCV 2019,
  arXiv:1905.02188, and mmdetection's FPN_CARAFE) on a three-level backbone (strides 2, 4, 8).
  Input H and W must be multiples of 8 so that every upsampled level matches its lateral.

Both are deliberately tiny (a few thousand to tens of thousands of parameters) so that export
and validation on ONNX Runtime and the ONNX reference evaluator take seconds. They are untrained:
the attention gamma starts at 0.5 (the paper's 0 would make the block an identity) and CARAFE's
encoder std is 0.1 (the paper's 0.001 gives near-uniform kernels), so the parity checks exercise
the attention and reassembly paths.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class CCNetSmall(nn.Module):
    """image [N, in_channels, H, W] -> logits [N, num_classes, H, W]."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5, width: int = 32,
                 recurrence: int = 2, gamma_init: float = 0.5):
        super().__init__()
        from attn_deploy.modules.registry import create

        self.backbone = nn.Sequential(_conv_bn_relu(in_channels, width // 2, 2),
                                      _conv_bn_relu(width // 2, width, 2),
                                      _conv_bn_relu(width, width, 2))
        inter = max(width // 4, 8)
        self.conva = _conv_bn_relu(width, inter)
        self.cca = create("cca", channels=inter, recurrence=recurrence, gamma_init=gamma_init)
        self.convb = _conv_bn_relu(inter, inter)
        self.bottleneck = _conv_bn_relu(width + inter, width)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: [N, C_in, H, W] -> logits [N, num_classes, H, W]."""
        x = self.backbone(image)
        y = self.convb(self.cca(self.conva(x)))
        logits = self.classifier(self.bottleneck(torch.cat([x, y], 1)))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear",
                             align_corners=False)


class CARAFEFPNSmall(nn.Module):
    """image [N, C_in, H, W] -> (p1 [N, C, H/2, W/2], p2 [.., H/4, W/4], p3 [.., H/8, W/8])."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (16, 32, 64),
                 out_channels: int = 32, up_kernel: int = 5, up_group: int = 1,
                 compressed_channels: int = 16, encoder_std: float = 0.1):
        super().__init__()
        from attn_deploy.modules.registry import create

        chans = (in_channels, *widths)
        self.stages = nn.ModuleList(_conv_bn_relu(chans[i], chans[i + 1], 2)
                                    for i in range(len(widths)))
        self.laterals = nn.ModuleList(nn.Conv2d(w, out_channels, 1) for w in widths)
        self.upsamplers = nn.ModuleList(
            create("carafe", channels=out_channels, scale_factor=2, up_kernel=up_kernel,
                   up_group=up_group, compressed_channels=compressed_channels,
                   encoder_std=encoder_std)
            for _ in range(len(widths) - 1))
        self.outputs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                     for _ in widths)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image: [N, C_in, H, W] (H, W multiples of 8) -> one [N, C, H/2^l, W/2^l] per level."""
        feats, x = [], image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        lat = [conv(f) for conv, f in zip(self.laterals, feats)]
        top_down = [lat[-1]]
        for i in range(len(lat) - 2, -1, -1):
            top_down.insert(0, lat[i] + self.upsamplers[i](top_down[0]))
        return tuple(conv(p) for conv, p in zip(self.outputs, top_down))


def ccnet_small(**kwargs) -> CCNetSmall:
    """The CCNet-style example (``attn_deploy.deploy.examples:ccnet_small``), eval mode."""
    return CCNetSmall(**kwargs).eval()


def carafe_fpn_small(**kwargs) -> CARAFEFPNSmall:
    """The CARAFE FPN neck example (``attn_deploy.deploy.examples:carafe_fpn_small``)."""
    return CARAFEFPNSmall(**kwargs).eval()
