"""Position and channel attention modules of DANet, and the two summed.

Paper: Fu, Liu, Tian, Li, Bao, Fang, Lu, "Dual Attention Network for Scene Segmentation",
CVPR 2019, arXiv:1809.02983. Official code: https://github.com/junfu1115/DANet (PyTorch).

- ``danet_pam`` (position attention): 1x1 convs (with bias) give query and key with C/8
  channels and value with C; ``S = softmax_j(q_i . k_j)`` over the HW positions;
  ``out_i = gamma * sum_j S_ij v_j + x_i``.
- ``danet_cam`` (channel attention, no convs): ``energy = A A^T`` over the flattened input
  ``A [C, HW]``; as in the official code, the softmax is taken over ``max_k(energy_ik) -
  energy_ij`` rather than over the energy itself (the paper's Eq. 3 writes the plain energy);
  ``out = gamma * softmax(...) A + x``.
- ``danet``: ``PAM(x) + CAM(x)`` on the same input. The official DANetHead wraps each module in
  3x3 conv-BN-ReLU layers (channel reduction C/4 before, a conv after) and ends in a
  classifier; those are segmentation-head layers, not attention, and are left out here, so
  ``danet`` is exactly the attention part of the head: the two module outputs summed (each with
  its own residual, so the input appears twice in the sum, as in the head's feature sum).

gamma is a learnable scalar initialised to 0 (paper and code), which makes a fresh module an
identity; ``gamma_init`` keeps that default, and the registry builds the blocks with
``gamma_init=0.5`` so that an untrained block's export and parity checks exercise the attention.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import float_arg, int_arg
from attn_deploy.modules.layers import check_nchw, reduced_channels
from attn_deploy.modules.registry import register


class PositionAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 8,
                 rd_channels: int | None = None, gamma_init: float = 0.0):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        gamma_init = float_arg("gamma_init", gamma_init)
        self.channels = channels
        self.query = nn.Conv2d(channels, rd, 1)
        self.key = nn.Conv2d(channels, rd, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> S: [N, HW, HW], each row a softmax over the positions j."""
        q = self.query(x).flatten(2)  # [N, rd, HW]
        k = self.key(x).flatten(2)
        return torch.matmul(q.transpose(1, 2), k).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        s = self.attention(x)
        v = self.value(x).flatten(2)                       # [N, C, HW]
        out = torch.matmul(v, s.transpose(1, 2))           # out_i = sum_j S_ij v_j
        return self.gamma * out.reshape(x.shape) + x


class ChannelAttention(nn.Module):
    def __init__(self, channels: int = 64, gamma_init: float = 0.0):
        super().__init__()
        self.channels = int_arg("channels", channels)
        gamma_init = float_arg("gamma_init", gamma_init)
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> X: [N, C, C], each row a softmax over the channels j."""
        a = x.flatten(2)                                   # [N, C, HW]
        energy = torch.matmul(a, a.transpose(1, 2))        # [N, C, C]
        energy = energy.amax(dim=-1, keepdim=True) - energy
        return energy.softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        out = torch.matmul(self.attention(x), x.flatten(2))
        return self.gamma * out.reshape(x.shape) + x


class DualAttention(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 8,
                 rd_channels: int | None = None, gamma_init: float = 0.0):
        super().__init__()
        self.pam = PositionAttention(channels, rd_ratio, rd_channels, gamma_init)
        self.cam = ChannelAttention(channels, gamma_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> PAM(x) + CAM(x): [N, C, H, W]."""
        return self.pam(x) + self.cam(x)


_PAPER = "DANet, CVPR19, arXiv:1809.02983"
for _key, _cls, _title in (("danet_pam", PositionAttention, "Position attention module"),
                           ("danet_cam", ChannelAttention, "Channel attention module"),
                           ("danet", DualAttention, "Dual attention (PAM + CAM)")):
    register(
        _key, _cls, title=_title, paper=_PAPER, family="spatial", export_path="std",
        inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
        dims={"N": 2, "H": 16, "W": 16}, defaults={"gamma_init": 0.5},
    )
