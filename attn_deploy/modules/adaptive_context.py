"""Adaptive Context Modules (ACM) in a pyramid, as in APCNet.

Paper: He, Deng, Zhou, Wang, Qiao, "Adaptive Pyramid Context Network for Semantic
Segmentation", CVPR 2019. No official code was released; the public reference is
mmsegmentation's ``APCHead`` (open-mmlab/mmsegmentation, ``decode_heads/apc_head.py``), whose
choices are followed where the paper is silent.

One ACM at scale s: the input is average-pooled to s x s sub-regions (1x1 conv + BN + ReLU on
the pooled map gives the region features, [s^2, C]); the input is reduced by 1x1 conv + BN +
ReLU (x'); a global vector g (global average pool of x', then 1x1 conv + BN + ReLU) guides the
affinity ``A = sigmoid(conv1x1(x' + g))`` of every pixel to every region, [HW x s^2], with no
softmax. The context ``A @ regions`` goes through 1x1 conv + BN + ReLU, is added to x' (ReLU),
then a 1x1 conv + BN + ReLU fusion conv (mmseg's ``fusion=True``).

The block registered as ``acm`` is the paper's pyramid of ACMs (APCNet, s in {1, 2, 3, 6}):
the ACM outputs are concatenated with the input and fused by a conv + BN + ReLU (3x3 as in
mmseg; ``fuse_kernel``). A single ACM is ``pool_scales=(s,)``. The s x s pooling uses the
deploy-friendly :func:`pyramid_pool_matrix` (exact PyTorch bins for any H, W) instead of
``F.adaptive_avg_pool2d``, whose dynamo export is fixed to the example size.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.adaptive_pool import pyramid_pool_matrix
from attn_deploy.modules.arg_checks import bool_arg, int_arg, int_tuple_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class AdaptiveContext(nn.Module):
    """One ACM at pooling scale ``pool_scale``: [N, C, H, W] -> [N, out_channels, H, W]."""

    def __init__(self, channels: int, out_channels: int, pool_scale: int, fusion: bool = True):
        super().__init__()
        self.pool_scale = pool_scale
        self.pooled_redu_conv = _conv_bn_relu(channels, out_channels)
        self.input_redu_conv = _conv_bn_relu(channels, out_channels)
        self.global_info = _conv_bn_relu(out_channels, out_channels)
        self.gla = nn.Conv2d(out_channels, pool_scale ** 2, 1)
        self.residual_conv = _conv_bn_relu(out_channels, out_channels)
        self.fusion_conv = _conv_bn_relu(out_channels, out_channels) if fusion else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, out_channels, H, W]."""
        n, _, h, w = x.shape
        s = self.pool_scale
        pool = pyramid_pool_matrix(h, w, (s,), x.dtype, x.device)              # [HW, s*s]
        pooled = torch.matmul(x.flatten(2), pool).reshape(n, -1, s, s)
        regions = self.pooled_redu_conv(pooled).flatten(2)                     # [N, C', s*s]
        x = self.input_redu_conv(x)                                            # [N, C', H, W]
        g = self.global_info(x.mean((2, 3), keepdim=True))                     # [N, C', 1, 1]
        affinity = torch.sigmoid(self.gla(x + g)).flatten(2)                   # [N, s*s, HW]
        z = torch.matmul(regions, affinity).reshape(n, -1, h, w)               # [N, C', H, W]
        z = torch.relu(self.residual_conv(z) + x)
        return self.fusion_conv(z)


class AdaptivePyramidContext(nn.Module):
    """ACMs at every scale in ``pool_scales``, concatenated with the input and fused."""

    def __init__(self, channels: int = 64, out_channels: int | None = None,
                 pool_scales=(1, 2, 3, 6), fusion: bool = True, fuse_kernel: int = 3):
        super().__init__()
        channels = int_arg("channels", channels)
        out_channels = optional_int_arg("out_channels", out_channels) or channels
        scales = int_tuple_arg("pool_scales", pool_scales)
        fusion = bool_arg("fusion", fusion)
        fuse_kernel = int_arg("fuse_kernel", fuse_kernel, odd=True)
        self.channels = channels
        self.acms = nn.ModuleList(AdaptiveContext(channels, out_channels, s, fusion)
                                  for s in scales)
        self.bottleneck = _conv_bn_relu(channels + len(scales) * out_channels, out_channels,
                                        fuse_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, out_channels, H, W]."""
        check_nchw(x, self.channels)
        return self.bottleneck(torch.cat([x] + [acm(x) for acm in self.acms], 1))


register(
    "acm", AdaptivePyramidContext, title="Adaptive Context Module (APCNet pyramid)",
    paper="APCNet, CVPR19 (He et al., openaccess.thecvf.com)", family="spatial",
    export_path="rewrite",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 14, "W": 14},
)
