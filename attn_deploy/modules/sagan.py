"""Self-attention module of SAGAN.

Paper: Zhang, Goodfellow, Metaxas, Odena, "Self-Attention Generative Adversarial Networks",
ICML 2019, arXiv:1805.08318. Code: the authors' TensorFlow release
(https://github.com/brain-research/self-attention-gan) and BigGAN-PyTorch's ``Attention``
(https://github.com/ajbrock/BigGAN-PyTorch, by a co-author), which follow the same design.

``beta_ji = softmax_i(f(x_i) . g(x_j))`` over key positions i; ``o_j = v(sum_i beta_ji h(x_i))``;
``y = gamma * o + x`` with a learnable scalar gamma initialised to 0. f and g are 1x1 convs to
C/8 channels. Choices, following the official code where the paper differs or is silent:

- h has C/2 channels and v maps C/2 back to C (official code; the paper's text uses a C/8-wide
  h and an earlier version used h to C without v).
- The keys g(x) and values h(x) are max-pooled 2x2 (official code; the paper does not mention
  it), cutting the attention matrix to HW x HW/4. Pooling uses ceil mode: identical to the
  official code on even sizes, and on odd sizes (where the official code fails) the last
  row/column forms its own window, so any H, W >= 2 works.
- The convs have no bias (official code). The official code wraps every conv in spectral
  normalisation, a training-time reparametrisation of the weight; at inference it is a fixed
  weight, so the block holds plain convs (train with ``torch.nn.utils.parametrizations.
  spectral_norm`` and remove it before export).

``gamma_init`` keeps the paper's 0; the registry builds the block with ``gamma_init=0.5`` so
that an untrained block's export and parity checks exercise the attention path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg, float_arg, ratio_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register


class SelfAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 8,
                 rd_channels: int | None = None, value_ratio: float = 1 / 2,
                 pool: bool = True, gamma_init: float = 0.0):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        value_ratio = ratio_arg("value_ratio", value_ratio)
        pool, gamma_init = bool_arg("pool", pool), float_arg("gamma_init", gamma_init)
        vd = max(1, int(round(channels * value_ratio)))
        self.channels, self.pool = channels, pool
        self.f = nn.Conv2d(channels, rd, 1, bias=False)   # queries (BigGAN: theta)
        self.g = nn.Conv2d(channels, rd, 1, bias=False)   # keys (BigGAN: phi)
        self.h = nn.Conv2d(channels, vd, 1, bias=False)   # values (BigGAN: g)
        self.v = nn.Conv2d(vd, channels, 1, bias=False)   # output (BigGAN: o)
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, 2, 2, ceil_mode=True) if self.pool else t

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> beta: [N, HW, M], rows softmax over the M key positions
        (M = ceil(H/2) * ceil(W/2) with pooling, else HW)."""
        q = self.f(x).flatten(2)                # [N, rd, HW]
        k = self._pool(self.g(x)).flatten(2)    # [N, rd, M]
        return torch.matmul(q.transpose(1, 2), k).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        beta = self.attention(x)
        val = self._pool(self.h(x)).flatten(2)          # [N, vd, M]
        o = torch.matmul(val, beta.transpose(1, 2))     # [N, vd, HW]
        o = self.v(o.reshape(x.shape[0], -1, x.shape[2], x.shape[3]))
        return self.gamma * o + x


register(
    "sagan", SelfAttention, title="SAGAN self-attention",
    paper="SAGAN, ICML19, arXiv:1805.08318",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16}, defaults={"gamma_init": 0.5},
    min_dims={"H": 2, "W": 2},
)
