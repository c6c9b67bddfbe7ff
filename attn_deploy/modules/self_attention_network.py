"""Pairwise and patchwise self-attention (the SAN self-attention operation).

Paper: Zhao, Jia, Koltun, "Exploring Self-attention for Image Recognition", CVPR 2020,
arXiv:2004.13621. Official code: https://github.com/hszhao/SAN (``model/san.py``, CUDA ops in
``lib/sa``).

``y_i = sum_{j in R(i)} alpha(x_i, x_j) (.) beta(x_j)`` over the k x k footprint R(i) (k = 7),
where beta is a 1x1 conv to ``out_channels`` and the weight vector alpha has
``out_channels / share_planes`` channels, channel c of beta using weight channel
``c % (out_channels / share_planes)`` (as the official aggregation kernel indexes it).

- ``mode="pairwise"``: alpha(x_i, x_j) = gamma([phi(x_i) - psi(x_j), p_i - p_j]) (the paper's
  subtraction relation), p = a learned 1x1 map of the pixel's normalised (x, y) in [-1, 1];
  gamma = BN-ReLU-1x1 conv-BN-ReLU-1x1 conv; softmax over the footprint.
- ``mode="patchwise"``: alpha(x_R(i))_j = gamma([phi(x_i), psi(x_j) for all j in R(i)])
  (concatenation), gamma predicting k*k weights per weight channel; no softmax (as in the
  official code).

Choices from the official code: phi and psi are 1x1 convs to ``rel_channels`` (official:
channels / 16); the footprint is reflection-padded at the borders (``pad_mode=1``), so H and W
must exceed k // 2. The coordinate grid is built from ``Range`` on the runtime H, W rather than
``linspace``: ``-1 + 2 i / (W - 1)``. BatchNorm layers run in eval mode (folded affine).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules._local_windows import local_windows
from attn_deploy.modules.arg_checks import choice_arg, divisor_arg, int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register

MODES = ("pairwise", "patchwise")


def normalized_coordinates(x: torch.Tensor) -> torch.Tensor:
    """[1, 2, H, W]: (x, y) of every pixel of x [N, C, H, W], each from -1 to 1."""
    h, w = x.shape[-2:]

    def axis(size: int) -> torch.Tensor:
        idx = torch.arange(size, device=x.device, dtype=x.dtype)
        return idx * 2 / idx.max().clamp(min=1) - 1       # a single pixel sits at -1

    loc_x = axis(w)[None, :].expand(h, w)
    loc_y = axis(h)[:, None].expand(h, w)
    return torch.stack([loc_x, loc_y])[None]


class SelfAttentionNetwork(nn.Module):
    def __init__(self, channels: int = 32, out_channels: int | None = None,
                 rel_channels: int | None = None, share_planes: int = 8,
                 kernel_size: int = 7, mode: str = "pairwise"):
        super().__init__()
        channels = int_arg("channels", channels)
        out_channels = optional_int_arg("out_channels", out_channels) or channels
        rel = optional_int_arg("rel_channels", rel_channels) or max(1, channels // 16)
        mode = choice_arg("mode", mode, MODES)
        share_planes = divisor_arg("share_planes", int_arg("share_planes", share_planes),
                                   "out_channels", out_channels)
        kernel_size = int_arg("kernel_size", kernel_size, odd=True)
        wc, k2 = out_channels // share_planes, kernel_size ** 2
        self.channels, self.out_channels, self.kernel_size, self.mode = (
            channels, out_channels, kernel_size, mode)
        self.weight_channels = wc
        self.phi = nn.Conv2d(channels, rel, 1)
        self.psi = nn.Conv2d(channels, rel, 1)
        self.beta = nn.Conv2d(channels, out_channels, 1)
        if mode == "pairwise":
            self.position = nn.Conv2d(2, 2, 1)
            self.gamma = nn.Sequential(
                nn.BatchNorm2d(rel + 2), nn.ReLU(), nn.Conv2d(rel + 2, rel, 1, bias=False),
                nn.BatchNorm2d(rel), nn.ReLU(), nn.Conv2d(rel, wc, 1))
        else:
            self.gamma = nn.Sequential(
                nn.BatchNorm2d(rel * (k2 + 1)), nn.ReLU(),
                nn.Conv2d(rel * (k2 + 1), wc, 1, bias=False),
                nn.BatchNorm2d(wc), nn.ReLU(), nn.Conv2d(wc, k2 * wc, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, out_channels, H, W]; H, W > kernel_size // 2."""
        check_nchw(x, self.channels)
        n, _, h, w = x.shape
        k, k2, wc = self.kernel_size, self.kernel_size ** 2, self.weight_channels
        xi = self.phi(x)
        if self.mode == "pairwise":
            xi = torch.cat([xi, self.position(normalized_coordinates(x)).expand(n, 2, h, w)], 1)
            keys = torch.cat([self.psi(x), xi[:, -2:]], 1)
        else:
            keys = self.psi(x)
        # footprints of keys (and positions) and of beta(x) together: one window extraction
        win = local_windows(torch.cat([keys, self.beta(x)], 1), k, padding_mode="reflect")
        xj, values = win[:, :keys.shape[1]], win[:, keys.shape[1]:]   # [N, *, H, W, k*k]
        if self.mode == "pairwise":
            rel = xi[..., None] - xj                                    # [N, rel+2, H, W, k*k]
            weights = self.gamma(rel.flatten(2, 3)).softmax(-1)         # [N, wc, H*W, k*k]
        else:   # gamma sees [phi(x_i); psi(x_j) for j in R(i)], channel-major as in the code
            patch = torch.cat([xi, xj.permute(0, 1, 4, 2, 3).flatten(1, 2)], 1)
            weights = self.gamma(patch).reshape(n, wc, k2, h * w).transpose(2, 3)
        values = values.reshape(n, self.out_channels // wc, wc, h * w, k2)
        return (weights[:, None] * values).sum(-1).reshape(n, self.out_channels, h, w)


register(
    "san", SelfAttentionNetwork, title="Pairwise and patchwise self-attention (SAN)",
    paper="Exploring Self-attention for Image Recognition, CVPR20, arXiv:2004.13621",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12},
    # reflection padding by k // 2 needs more than k // 2 rows and columns
    min_dims=lambda c: {"H": c["kernel_size"] // 2 + 1, "W": c["kernel_size"] // 2 + 1},
)
