"""Asymmetric Non-local blocks: AFNB (fusion of two levels) and APNB (pyramid self-attention).

Paper: Zhu, Xu, Bai, Huang, Bai, "Asymmetric Non-local Neural Networks for Semantic
Segmentation", ICCV 2019, arXiv:1908.07678. Official code: https://github.com/MendelXu/ANN.

Both blocks are non-local attention whose keys and values are not every pixel but S pyramid
samples: adaptive average pooling of the key and value maps to 1x1, 3x3, 6x6 and 8x8 bins,
flattened and concatenated (S = 110). Queries stay at every pixel, so attention is [HW x S].
- key/query: 1x1 conv + BN + ReLU; value: 1x1 conv; similarity ``q^T k / sqrt(key_channels)``,
  softmax over the S samples; context = attention-weighted values, then the output 1x1 conv W.
- AFNB: keys and values from the low-level map, queries from the high-level map; the context is
  concatenated with the high-level map, then 1x1 conv + BN (no ReLU) + Dropout2d.
- APNB: one map; key and query share one projection (as in the official code); the context is
  concatenated with the input, then 1x1 conv + BN + ReLU + Dropout2d.
Choices from the official code: one stage (query scale 1, the official default), dropout 0.05
(identity at inference), W initialised to zero (``zero_init_out=True``). The registered blocks
use ``zero_init_out=False`` so that parity tests see the attention path. The pyramid sampling
uses one [HW, S] pooling matrix (:func:`pyramid_pool_matrix`: exact PyTorch bins for any
H, W) for keys and values, instead of
``nn.AdaptiveAvgPool2d``, which exports with a kernel fixed to the example size.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.adaptive_pool import pyramid_pool_matrix
from attn_deploy.modules.arg_checks import (bool_arg, int_arg, int_tuple_arg, optional_int_arg,
                                            rate_arg)
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU())


class PyramidAttention(nn.Module):
    """Queries at every pixel of ``query_map``, keys/values from pyramid samples of ``kv_map``."""

    def __init__(self, kv_channels: int, query_channels: int, key_channels: int,
                 value_channels: int, out_channels: int, psp_sizes=(1, 3, 6, 8),
                 share_key_query: bool = False, zero_init_out: bool = True):
        super().__init__()
        # the blocks' own arguments, checked here for both blocks
        key_channels = int_arg("key_channels", key_channels)
        value_channels = int_arg("value_channels", value_channels)
        self.psp_sizes = int_tuple_arg("psp_sizes", psp_sizes)
        zero_init_out = bool_arg("zero_init_out", zero_init_out)
        self.key_channels = key_channels
        self.f_key = _conv_bn_relu(kv_channels, key_channels)
        self.f_query = self.f_key if share_key_query else _conv_bn_relu(query_channels,
                                                                         key_channels)
        self.f_value = nn.Conv2d(kv_channels, value_channels, 1)
        self.out = nn.Conv2d(value_channels, out_channels, 1)
        if zero_init_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, kv_map: torch.Tensor, query_map: torch.Tensor) -> torch.Tensor:
        """kv_map [N, Ckv, h, w], query_map [N, Cq, H, W] -> context [N, out_channels, H, W]."""
        n, _, h, w = query_map.shape
        pool = pyramid_pool_matrix(kv_map.shape[2], kv_map.shape[3], self.psp_sizes,
                                   kv_map.dtype, kv_map.device)         # [hw, S]
        key = torch.matmul(self.f_key(kv_map).flatten(2), pool)          # [N, Ck, S]
        value = torch.matmul(self.f_value(kv_map).flatten(2), pool)      # [N, Cv, S]
        query = self.f_query(query_map).flatten(2).transpose(1, 2)        # [N, HW, Ck]
        sim = torch.softmax(torch.matmul(query, key) * self.key_channels ** -0.5, dim=-1)
        context = torch.matmul(value, sim.transpose(1, 2))                # [N, Cv, HW]
        return self.out(context.reshape(n, -1, h, w))


class AsymmetricFusionNonLocal(nn.Module):
    """AFNB: fuse a low-level map into a high-level map through pyramid-sampled attention."""

    def __init__(self, channels: int = 64, low_channels: int = 32, key_channels: int = 32,
                 value_channels: int = 32, out_channels: int | None = None,
                 psp_sizes=(1, 3, 6, 8), dropout: float = 0.05, zero_init_out: bool = True):
        super().__init__()
        channels = int_arg("channels", channels)
        low_channels = int_arg("low_channels", low_channels)
        out_channels = optional_int_arg("out_channels", out_channels) or channels
        dropout = rate_arg("dropout", dropout)
        self.channels, self.low_channels = channels, low_channels
        self.attention = PyramidAttention(low_channels, channels, key_channels, value_channels,
                                          out_channels, psp_sizes, False, zero_init_out)
        self.fuse = nn.Sequential(nn.Conv2d(out_channels + channels, out_channels, 1),
                                  nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """low [N, Cl, H, W], high [N, C, H, W] -> [N, out_channels, H, W]."""
        check_nchw(low, self.low_channels, "low")
        check_nchw(high, self.channels, "high")
        context = self.attention(low, high)
        return self.fuse(torch.cat([context, high], 1))


class AsymmetricPyramidNonLocal(nn.Module):
    """APNB: self-attention with pyramid-sampled keys and values."""

    def __init__(self, channels: int = 64, key_channels: int = 32, value_channels: int = 32,
                 out_channels: int | None = None, psp_sizes=(1, 3, 6, 8), dropout: float = 0.05,
                 zero_init_out: bool = True):
        super().__init__()
        channels = int_arg("channels", channels)
        out_channels = optional_int_arg("out_channels", out_channels) or channels
        dropout = rate_arg("dropout", dropout)
        self.channels = channels
        # The official fuse conv takes 2 * channels: the context has the input's width.
        self.attention = PyramidAttention(channels, channels, key_channels, value_channels,
                                          channels, psp_sizes, True, zero_init_out)
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, out_channels, 1),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(),
                                  nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> [N, out_channels, H, W]."""
        check_nchw(x, self.channels)
        return self.fuse(torch.cat([self.attention(x, x), x], 1))


_PAPER = "ANN, ICCV19, arXiv:1908.07678"
register(
    "ann_afnb", AsymmetricFusionNonLocal, title="Asymmetric Fusion Non-local Block",
    paper=_PAPER, family="spatial", export_path="rewrite",
    inputs=lambda c: {"low": ("N", c["low_channels"], "H", "W"),
                      "high": ("N", c["channels"], "H", "W")},
    outputs=("y",), dims={"N": 2, "H": 14, "W": 14}, defaults={"zero_init_out": False},
)
register(
    "ann_apnb", AsymmetricPyramidNonLocal, title="Asymmetric Pyramid Non-local Block",
    paper=_PAPER, family="spatial", export_path="rewrite",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")},
    outputs=("y",), dims={"N": 2, "H": 14, "W": 14}, defaults={"zero_init_out": False},
)
