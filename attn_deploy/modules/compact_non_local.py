"""Compact Generalized Non-local (CGNL) block.

Paper: Yue, Sun, Li, Zhou, Ding, Xu, "Compact Generalized Non-local Network", NeurIPS 2018,
arXiv:1810.13125. Official code: https://github.com/KaiyuYue/cgnl-network.pytorch.

Unlike the non-local block, CGNL relates every position (c, h, w) of a channel group to every
other one, not only spatial positions: with theta, phi, g = 1x1 convs of x, flattened per group
to vectors of length C_g*H*W, ``y_i = sum_j f(theta_i, phi_j) g_j``. A kernel that factors as
``f(t, p) = sum_k a_k(t) b_k(p)`` makes this compact: ``y_i = sum_k a_k(theta_i) * s_k`` with
``s_k = sum_j b_k(phi_j) g_j``, one scalar per (sample, group, k), linear in C*H*W.
- ``dot``: f = t*p (the paper's main kernel).
- ``gaussian`` (embedded Gaussian): f = exp(t*p), Taylor expansion to ``order``:
  sum_k (t p)^k / k!.
- ``rbf`` (Gaussian RBF): f = exp(-gamma (t - p)^2) = exp(-gamma t^2) exp(-gamma p^2)
  exp(2 gamma t p), the last factor expanded to ``order``. The paper's beta is kept per element;
  the official code simplifies it to the constant exp(-2 gamma) "to ease training".
Then a grouped 1x1 conv z, GroupNorm with ``groups`` groups, and the residual.
Choices from the official code: no biases in theta/phi/g/z, planes = channels / 2, groups = 8,
order = 3, gamma = 1e-4, ``use_scale=False`` (True divides by sqrt(C_g*H*W)). The official init
sets GN's weight to 0 (the block starts as identity): that is ``zero_init_norm=True``; the
registered block uses False so that tests see the attention path.
The bottleneck width is ``planes`` (the authors' name) rather than ``rd_ratio`` /
``rd_channels``, so that their configurations read the same here.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import (bool_arg, choice_arg, divisor_arg, float_arg, int_arg,
                                            optional_int_arg)
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register

KERNELS = ("dot", "gaussian", "rbf")


class CompactGeneralizedNonLocal(nn.Module):
    def __init__(self, channels: int = 64, planes: int | None = None, groups: int = 8,
                 kernel: str = "dot", order: int = 3, gamma: float = 1e-4,
                 use_scale: bool = False, zero_init_norm: bool = True):
        super().__init__()
        channels = int_arg("channels", channels)
        planes = optional_int_arg("planes", planes)
        if planes is None:
            planes = channels // 2
            if planes < 1:
                raise AttnDeployError(f"channels: expected >= 2 when planes is not given "
                                      f"(planes = channels // 2), got {channels}")
        kernel = choice_arg("kernel", kernel, KERNELS)
        groups = divisor_arg("groups", int_arg("groups", groups), "channels", channels)
        divisor_arg("groups", groups, "planes", planes)
        order = int_arg("order", order)    # the Taylor order (unused by "dot")
        gamma = float_arg("gamma", gamma, min=0, min_open=kernel == "rbf")
        use_scale = bool_arg("use_scale", use_scale)
        zero_init_norm = bool_arg("zero_init_norm", zero_init_norm)
        self.groups, self.kernel, self.order = groups, kernel, order
        self.gamma, self.use_scale = float(gamma), use_scale
        self.t = nn.Conv2d(channels, planes, 1, bias=False)
        self.p = nn.Conv2d(channels, planes, 1, bias=False)
        self.g = nn.Conv2d(channels, planes, 1, bias=False)
        self.z = nn.Conv2d(planes, channels, 1, groups=groups, bias=False)
        self.gn = nn.GroupNorm(groups, channels)
        if zero_init_norm:
            nn.init.zeros_(self.gn.weight)
            nn.init.zeros_(self.gn.bias)

    def _terms(self, t: torch.Tensor, p: torch.Tensor) -> tuple[list, list]:
        """a_k(t), b_k(p) with f(t, p) = sum_k a_k(t) b_k(p)."""
        if self.kernel == "dot":
            return [t], [p]
        ts, ps = [torch.ones_like(t)], [torch.ones_like(p)]
        for _ in range(self.order):
            ts.append(ts[-1] * t)
            ps.append(ps[-1] * p)
        c = 2 * self.gamma if self.kernel == "rbf" else 1.0
        ps = [pk * (c ** k / math.factorial(k)) for k, pk in enumerate(ps)]
        if self.kernel == "rbf":
            et, ep = torch.exp(-self.gamma * t * t), torch.exp(-self.gamma * p * p)
            ts, ps = [tk * et for tk in ts], [pk * ep for pk in ps]
        return ts, ps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.t.in_channels)
        n, _, h, w = x.shape
        # [N, G, Cg*H*W]: each group is one vector of positions (channel, row, column).
        t, p, g = (f(x).reshape(n, self.groups, -1) for f in (self.t, self.p, self.g))
        ts, ps = self._terms(t, p)
        y = sum(tk * (pk * g).sum(-1, keepdim=True) for tk, pk in zip(ts, ps))
        if self.use_scale:
            y = y * torch.rsqrt(torch.full((), t.shape[-1], dtype=x.dtype, device=x.device))
        y = self.z(y.reshape(n, -1, h, w))
        return self.gn(y) + x


register(
    "cgnl", CompactGeneralizedNonLocal, title="Compact Generalized Non-local block",
    paper="CGNL, NeurIPS18, arXiv:1810.13125", family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 14, "W": 14}, defaults={"zero_init_norm": False},
)
