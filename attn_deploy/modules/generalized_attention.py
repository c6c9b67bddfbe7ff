"""Generalized spatial attention (the four-term attention of the empirical study).

Paper: Zhu, Cheng, Zhang, Lin, Dai, "An Empirical Study of Spatial Attention Mechanisms in Deep
Networks", ICCV 2019, arXiv:1904.05873. Authors' code: ``GeneralizedAttention`` in mmcv
(``mmcv/cnn/bricks/generalized_attention.py``), used by mmdetection's empirical_attention configs.

For each head the attention logit between query pixel q and key pixel k is the sum of the terms
selected by ``attention_type``, a 4-character bit string (mmcv's default ``"1111"``):
  bit 0 ``1000`` query content & key content: ``z_q . k_k``
  bit 1 ``0100`` query content & relative position: ``z_q . R_{q-k}``
  bit 2 ``0010`` key content only (key saliency): ``u . k_k``
  bit 3 ``0001`` relative position only: ``v . R_{q-k}``
with z, k and the values 1x1 projections (C / heads channels per head, no bias), u and v learned
per-head vectors, and R the relative-position feature: the (dy, dx) offset (key positions
strided by ``kv_stride``) encoded sinusoidally (wave length 1000, ``position_embedding_dim / 2``
features per axis), projected per axis by a linear layer and divided by sqrt(2), as in mmcv.
Softmax runs over the key positions; the heads' outputs go through a 1x1 conv (with bias) and
``y = gamma * out + x``.

Choices (from the authors' mmcv code unless said): keys and values are read at every
``kv_stride``-th pixel (mmcv's AvgPool2d(kernel 1, stride s)), default 2; no 1/sqrt(d) logit
scale; gamma is initialised to 0 in the paper's code - the module keeps ``gamma_init=0`` as its
default, and the registered block uses ``gamma_init=1.0`` so the attention path is not hidden
in parity tests. The pixel grid comes from ``Range`` on the runtime H/W (mmcv builds it with
``linspace``). Not supported: mmcv's ``q_stride`` > 1 and ``spatial_range`` >= 0 (a local window
tied to fixed map sizes).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import divisor_arg, float_arg, int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


def sinusoid_offsets(q_len: int, k_len: int, kv_stride: int, dim: int, magnitude: float,
                     like: torch.Tensor, wave_length: float = 1000.0) -> torch.Tensor:
    """[q_len, k_len, dim]: sin/cos features of ``(i - j * kv_stride) * magnitude``, dim even."""
    qi = torch.arange(q_len, device=like.device, dtype=like.dtype)
    kj = torch.arange(k_len, device=like.device, dtype=like.dtype) * kv_stride
    diff = (qi[:, None] - kj[None, :])[:, :, None] * magnitude
    freq = wave_length ** (torch.arange(dim // 2, dtype=like.dtype, device=like.device)
                           * (2.0 / dim))
    return torch.cat([(diff / freq).sin(), (diff / freq).cos()], 2)


class GeneralizedAttention(nn.Module):
    def __init__(self, channels: int = 32, num_heads: int = 4, attention_type: str = "1111",
                 kv_stride: int = 2, position_embedding_dim: int | None = None,
                 position_magnitude: float = 1.0, gamma_init: float = 0.0):
        super().__init__()
        if (not isinstance(attention_type, str) or len(attention_type) != 4
                or set(attention_type) - {"0", "1"} or attention_type == "0000"):
            raise AttnDeployError("attention_type: expected 4 characters of 0/1 with at least "
                                  f"one 1 (e.g. '1111', '0010'), got {attention_type!r}")
        channels = int_arg("channels", channels)
        num_heads = divisor_arg("num_heads", int_arg("num_heads", num_heads), "channels", channels)
        pos_dim = optional_int_arg("position_embedding_dim", position_embedding_dim) or channels
        if pos_dim % 4:
            raise AttnDeployError(f"position_embedding_dim: expected a multiple of 4 (it "
                                  f"defaults to channels), got {pos_dim}")
        kv_stride = int_arg("kv_stride", kv_stride)
        position_magnitude = float_arg("position_magnitude", position_magnitude)
        gamma_init = float_arg("gamma_init", gamma_init)
        self.content, self.query_pos, self.saliency, self.pos_bias = (
            b == "1" for b in attention_type)
        self.saliency_only = attention_type == "0010"
        self.channels, self.num_heads, self.head_dim = channels, num_heads, channels // num_heads
        self.kv_stride, self.pos_dim, self.magnitude = kv_stride, pos_dim, position_magnitude
        d = self.head_dim

        def stdv_init(size: int) -> nn.Parameter:   # mmcv: uniform in +-1/sqrt(2d)
            return nn.Parameter(torch.empty(size).uniform_(-1, 1) / math.sqrt(2 * d))

        if self.content or self.query_pos:
            self.query = nn.Conv2d(channels, channels, 1, bias=False)
        if self.content or self.saliency:
            self.key = nn.Conv2d(channels, channels, 1, bias=False)
        if self.query_pos or self.pos_bias:
            self.pos_x = nn.Linear(pos_dim // 2, channels, bias=False)
            self.pos_y = nn.Linear(pos_dim // 2, channels, bias=False)
        if self.saliency:
            self.appr_bias = stdv_init(channels)
        if self.pos_bias:
            self.geom_bias = stdv_init(channels)
        self.value = nn.Conv2d(channels, channels, 1, bias=False)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))
        # our choice: kaiming uniform (a=1, fan_in, leaky_relu) and zero bias for every conv and
        # linear layer (mmcv's init loop is meant for the 1x1 convs only)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight, a=1, mode="fan_in", nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def position_features(self, q_len: int, k_len: int, fc: nn.Linear,
                          like: torch.Tensor) -> torch.Tensor:
        """[heads, q_len, k_len, d]: projected relative-position features along one axis."""
        emb = sinusoid_offsets(q_len, k_len, self.kv_stride, self.pos_dim // 2, self.magnitude,
                               like)
        feat = fc(emb) / math.sqrt(2)
        return feat.reshape(q_len, k_len, self.num_heads, self.head_dim).permute(2, 0, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        n, c, h, w = x.shape
        heads, d, s = self.num_heads, self.head_dim, self.kv_stride
        x_kv = x[:, :, ::s, ::s] if s > 1 else x
        hk, wk = x_kv.shape[-2:]
        energy = 0
        if self.content or self.query_pos:
            q = self.query(x).reshape(n, heads, d, h * w).transpose(2, 3)      # [N, h, HW, d]
        if self.content or self.saliency:
            key = self.key(x_kv).reshape(n, heads, d, hk * wk)                 # [N, h, d, L]
            u = self.appr_bias.reshape(1, heads, 1, d) if self.saliency else 0
            a = q + u if self.content else u
            energy = a @ key                                          # [N, h, HW or 1, L]
        if self.query_pos or self.pos_bias:
            v = self.geom_bias.reshape(1, heads, 1, 1, d) if self.pos_bias else 0
            b = q.reshape(n, heads, h, w, d) + v if self.query_pos else v.expand(1, heads, h, w, d)
            ry = self.position_features(h, hk, self.pos_y, x)                 # [h, H, Hk, d]
            rx = self.position_features(w, wk, self.pos_x, x)                 # [h, W, Wk, d]
            ey = b @ ry.transpose(2, 3)                                       # [., h, H, W, Hk]
            ex = (b.transpose(2, 3) @ rx.transpose(2, 3)).transpose(2, 3)     # [., h, H, W, Wk]
            pos = (ey[..., :, None] + ex[..., None, :]).reshape(-1, heads, h * w, hk * wk)
            energy = energy + pos
        attn = energy.softmax(-1)                                     # [N, h, HW or 1, L]
        value = self.value(x_kv).reshape(n, heads, d, hk * wk).transpose(2, 3)
        out = (attn @ value).transpose(2, 3)                          # [N, h, d, HW or 1]
        if self.saliency_only:   # '0010': attention ignores the query; one output per image
            return self.gamma * self.proj(out.reshape(n, c, 1, 1)) + x
        return self.gamma * self.proj(out.reshape(n, c, h, w)) + x


register(
    "generalized_attention", GeneralizedAttention,
    title="Generalized spatial attention (four terms, bitmask)",
    paper="An Empirical Study of Spatial Attention Mechanisms, ICCV19, arXiv:1904.05873",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12}, defaults={"gamma_init": 1.0},
)
