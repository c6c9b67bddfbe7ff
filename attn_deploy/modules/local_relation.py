"""Local Relation layer (LR-Net).

Paper: Hu, Zhang, Xie, Lin, "Local Relation Networks for Image Recognition", ICCV 2019,
arXiv:1904.11491. No official code was released.

For output pixel p' and every pixel p of its k x k neighbourhood (k = 7 by default):
``omega(p', p) = softmax_p( Phi(q(p'), k(p)) + g(p - p') )`` and
``y_c(p') = sum_p omega_{c // m}(p', p) x_c(p)``, where q and k are 1x1 convs mapping C to C/m
channels (channel sharing: m consecutive channels share one aggregation weight, m = 8), Phi is
the scalar appearance composability of each key/query channel, by default the squared
difference ``-(q - k)^2``; the absolute difference and the product (the other forms the paper
compares) are selectable with ``composability``. g, the geometry prior, is a small network of
two 1x1 layers with a ReLU between, applied to the relative position (dy, dx) of each window
position, giving C/m values per position. The aggregated values are the input features
themselves (no value projection), as in the paper.

Choices where the paper is silent: the geometry network's hidden width is ``geometry_channels``
(default C/m, at least 4) and its input is the integer offset (dy, dx); key/query convs carry a
bias; window positions outside the image are left out of the softmax (masked).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules._local_windows import local_windows, window_offsets, window_validity
from attn_deploy.modules.arg_checks import choice_arg, divisor_arg, int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register

COMPOSABILITY = ("squared_difference", "absolute_difference", "product")


class LocalRelation(nn.Module):
    def __init__(self, channels: int = 32, kernel_size: int = 7, channel_sharing: int = 8,
                 geometry_channels: int | None = None,
                 composability: str = "squared_difference"):
        super().__init__()
        channels = int_arg("channels", channels)
        channel_sharing = int_arg("channel_sharing", channel_sharing)
        divisor_arg("channel_sharing", channel_sharing, "channels", channels)
        kernel_size = int_arg("kernel_size", kernel_size, odd=True)
        composability = choice_arg("composability", composability, COMPOSABILITY)
        groups = channels // channel_sharing
        hidden = optional_int_arg("geometry_channels", geometry_channels) or max(4, groups)
        self.channels, self.kernel_size, self.groups = channels, kernel_size, groups
        self.composability = composability
        self.query = nn.Conv2d(channels, groups, 1)
        self.key = nn.Conv2d(channels, groups, 1)
        self.geometry = nn.Sequential(nn.Conv2d(2, hidden, 1), nn.ReLU(),
                                      nn.Conv2d(hidden, groups, 1))
        # (dy, dx) of the k*k window positions as a [1, 2, 1, k*k] "image" for the 1x1 layers
        self.register_buffer("offsets", window_offsets(kernel_size).t()[None, :, None, :],
                             persistent=False)

    def geometry_prior(self) -> torch.Tensor:
        """[1, C/m, 1, 1, k*k]: the learned prior for every window position."""
        return self.geometry(self.offsets)[:, :, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        n, c, h, w = x.shape
        k2 = self.kernel_size ** 2
        q = self.query(x)[..., None]                                   # [N, G, H, W, 1]
        kx = local_windows(torch.cat([self.key(x), x], 1), self.kernel_size)
        keys, values = kx[:, :self.groups], kx[:, self.groups:]        # [N, G|C, H, W, k*k]
        if self.composability == "squared_difference":
            appearance = -(q - keys).square()
        elif self.composability == "absolute_difference":
            appearance = -(q - keys).abs()
        else:
            appearance = q * keys
        logits = appearance + self.geometry_prior()
        logits = logits.masked_fill(~window_validity(x, self.kernel_size), float("-inf"))
        weights = logits.softmax(-1)[:, :, None]                       # [N, G, 1, H, W, k*k]
        values = values.reshape(n, self.groups, c // self.groups, h, w, k2)
        return (weights * values).sum(-1).reshape(n, c, h, w)


register(
    "local_relation", LocalRelation, title="Local Relation layer",
    paper="Local Relation Networks, ICCV19, arXiv:1904.11491",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12},
)
