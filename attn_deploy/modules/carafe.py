"""CARAFE upsampler: Content-Aware ReAssembly of FEatures.

Paper: Wang, Chen, Xu, Liu, Loy, Lin, "CARAFE: Content-Aware ReAssembly of FEatures", ICCV 2019,
arXiv:1905.02188. Official code: mmcv's ``CARAFEPack`` (https://github.com/open-mmlab/mmcv) and
https://github.com/myownskyW7/CARAFE.

Kernel prediction: a 1x1 channel compressor to C_m = 64 channels, a content encoder (k_enc x k_enc
conv, k_enc = k_up - 2 = 3) to s^2 * G * k_up^2 channels, pixel shuffle to
[N, G * k_up^2, sH, sW], softmax over each group's k_up^2 weights (kernel normalizer).
Reassembly: ``attn_deploy.ops.carafe`` (exported as one ``attn_deploy::CARAFE`` node): each output
pixel is the k_up x k_up neighbourhood of its source pixel weighted by its kernel. Defaults
k_up = 5, s = 2, G = 1 (paper). x [N, C, H, W] -> [N, C, sH, sW].

Choices following the official code where the paper is silent: the channel order of the encoder
output is mmcv's (pixel shuffle first, then groups of k_up^2 per output pixel); the convs carry
biases and are Xavier-uniform initialised with zero bias, the content encoder normal with
std 0.001 (``encoder_std``), which makes the untrained kernels nearly uniform. The registry builds
the block with ``encoder_std=0.1`` so that an untrained block's parity checks exercise clearly
content-dependent kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.modules.arg_checks import divisor_arg, float_arg, int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register
from attn_deploy.ops import carafe


class CARAFEUpsampler(nn.Module):
    def __init__(self, channels: int = 64, scale_factor: int = 2, up_kernel: int = 5,
                 up_group: int = 1, encoder_kernel: int = 3, encoder_dilation: int = 1,
                 compressed_channels: int = 64, encoder_std: float = 0.001):
        super().__init__()
        channels = int_arg("channels", channels)
        scale_factor = int_arg("scale_factor", scale_factor)
        up_kernel = int_arg("up_kernel", up_kernel, odd=True)
        up_group = divisor_arg("up_group", int_arg("up_group", up_group), "channels", channels)
        encoder_kernel = int_arg("encoder_kernel", encoder_kernel, odd=True)
        encoder_dilation = int_arg("encoder_dilation", encoder_dilation)
        compressed_channels = int_arg("compressed_channels", compressed_channels)
        encoder_std = float_arg("encoder_std", encoder_std, min=0)
        self.channels, self.scale_factor = channels, scale_factor
        self.up_kernel, self.up_group = up_kernel, up_group
        self.channel_compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.content_encoder = nn.Conv2d(
            compressed_channels, scale_factor ** 2 * up_group * up_kernel ** 2, encoder_kernel,
            padding=(encoder_kernel - 1) * encoder_dilation // 2, dilation=encoder_dilation)
        for conv in (self.channel_compressor, self.content_encoder):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.content_encoder.weight, std=encoder_std)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> reassembly kernels [N, G * k_up^2, sH, sW], each group's k_up^2
        weights summing to 1."""
        masks = F.pixel_shuffle(self.content_encoder(self.channel_compressor(x)),
                                self.scale_factor)
        n, _, h, w = masks.shape
        masks = masks.reshape(n, self.up_group, self.up_kernel ** 2, h, w).softmax(dim=2)
        return masks.reshape(n, -1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, sH, sW]."""
        check_nchw(x, self.channels)
        return carafe(x, self.kernels(x), self.up_kernel, self.up_group, self.scale_factor)


register(
    "carafe", CARAFEUpsampler, title="CARAFE upsampler (content-aware reassembly)",
    paper="CARAFE, ICCV19, arXiv:1905.02188", family="spatial", export_path="plugin",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12}, defaults={"encoder_std": 0.1},
)
