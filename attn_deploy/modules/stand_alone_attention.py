"""Stand-alone local self-attention (SASA).

Paper: Ramachandran, Parmar, Vaswani, Bello, Levskaya, Shlens, "Stand-Alone Self-Attention in
Vision Models", NeurIPS 2019, arXiv:1906.05909. No official PyTorch code was released.

For pixel (i, j) and each head, with its k x k neighbourhood N_k(i, j) as the memory block:
``y_ij = sum_{(a,b) in N_k(i,j)} softmax_ab(q_ij . k_ab + q_ij . r_{a-i, b-j}) v_ab`` where
q, k, v are 1x1 projections (no bias) and the relative embedding ``r_{a-i,b-j}`` concatenates a
row-offset embedding and a column-offset embedding of half the head width each (the paper's
2-D relative embedding). As in the paper there is no 1/sqrt(d) scaling.

Choices where the paper is silent:
- Multi-head: each head is the paper's single-head attention on its own channel group, so each
  head has its own row and column embeddings (d_head / 2 channels each); d_head must be even.
- Borders: the memory block holds only pixels inside the image; positions of the k x k window
  that fall outside are excluded from the softmax (masked), not zero-padded keys.
- Initialisation (not given in the paper): embeddings N(0, 1), q/k/v PyTorch's default conv
  init.

Export: windows come from :mod:`attn_deploy.modules._local_windows` (Pad + Slice + Concat,
dynamic H/W; keys and values share one extraction). That module's docstring compares the window
forms measured inside this block on ONNX Runtime.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules._local_windows import local_windows, window_validity
from attn_deploy.modules.arg_checks import int_arg, optional_int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


class StandAloneAttention(nn.Module):
    def __init__(self, channels: int = 32, out_channels: int | None = None,
                 kernel_size: int = 7, num_heads: int = 4):
        super().__init__()
        channels = int_arg("channels", channels)
        out_channels = optional_int_arg("out_channels", out_channels) or channels
        num_heads = int_arg("num_heads", num_heads)
        if out_channels % num_heads or (out_channels // num_heads) % 2:
            raise AttnDeployError(
                f"num_heads: expected to split out_channels ({out_channels}) into heads of even "
                f"width (half for row, half for column embeddings), got {num_heads}")
        kernel_size = int_arg("kernel_size", kernel_size, odd=True)
        self.channels, self.kernel_size, self.num_heads = channels, kernel_size, num_heads
        self.head_dim = out_channels // num_heads
        self.query = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.key = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.value = nn.Conv2d(channels, out_channels, 1, bias=False)
        half = self.head_dim // 2
        self.rel_row = nn.Parameter(torch.randn(num_heads, half, kernel_size))
        self.rel_col = nn.Parameter(torch.randn(num_heads, half, kernel_size))

    def relative_embedding(self) -> torch.Tensor:
        """[heads, d_head, 1, 1, k*k]: r for window position (a, b) = [row(a); col(b)]."""
        k, (h, half) = self.kernel_size, self.rel_row.shape[:2]
        row = self.rel_row[:, :, :, None].expand(h, half, k, k)
        col = self.rel_col[:, :, None, :].expand(h, half, k, k)
        return torch.cat([row, col], 1).reshape(h, 2 * half, 1, 1, k * k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, out_channels, H, W]."""
        check_nchw(x, self.channels)
        n, _, h, w = x.shape
        heads, d, k = self.num_heads, self.head_dim, self.kernel_size
        q = self.query(x).reshape(n, heads, d, h, w, 1)
        # one window extraction for keys and values together: half the Slice nodes
        kv = local_windows(torch.cat([self.key(x), self.value(x)], 1), k)
        keys, values = kv.reshape(n, 2, heads, d, h, w, k * k).unbind(1)
        logits = (q * (keys + self.relative_embedding())).sum(2)          # [N, heads, H, W, k*k]
        logits = logits.masked_fill(~window_validity(x, k), float("-inf"))
        attn = logits.softmax(-1)
        return (attn[:, :, None] * values).sum(-1).reshape(n, heads * d, h, w)


register(
    "sasa", StandAloneAttention, title="Stand-alone local self-attention",
    paper="Stand-Alone Self-Attention in Vision Models, NeurIPS19, arXiv:1906.05909",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12},
)
