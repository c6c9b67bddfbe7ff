"""Feature Bank Operator, non-local form (FBO-NL) of Long-Term Feature Banks.

Paper: Wu, Feichtenhofer, Fan, He, Kraehenbuehl, Girshick, "Long-Term Feature Banks for
Detailed Video Understanding", CVPR 2019, arXiv:1812.05038. Official code:
https://github.com/facebookresearch/video-long-term-feature-banks (Caffe2).

Short-term features S [N, Cs, Ts] (e.g. one per actor / RoI of the current clip) attend to a
long-term feature bank L [N, Cl, Tl] (features of the whole video). Both are first reduced to
``latent`` channels by a 1x1 conv (with dropout in training). Then ``num_layers`` modified
non-local blocks, each: theta(S), phi(L), g(L) 1x1 convs; attention
``softmax(theta^T phi / sqrt(latent))`` over the Tl bank entries; the attended g; LayerNorm over
channels and ReLU (pre-activation); the output 1x1 conv; dropout; the residual ``S + .``; the
result is the next block's S. Output [N, latent, Ts].
Choices from the official code (its default config): 2 layers, latent 512 (64 here), scaling
on, pre-activation with LayerNorm (no learned affine: Caffe2's LayerNorm op), dropout 0.2
(identity at inference), biases on, output conv initialised to zero (``zero_init_out=True``,
which makes each block an identity at start; the registered block uses False so that tests see
the attention path). Each short-term feature is normalised on its own (the official code has
one feature per RoI).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import bool_arg, int_arg, rate_arg
from attn_deploy.modules.layers import check_nonempty
from attn_deploy.modules.registry import register


class BankAttention(nn.Module):
    """One modified non-local block: S [N, D, Ts] attends to L [N, D, Tl]."""

    def __init__(self, latent: int, dropout: float, zero_init_out: bool):
        super().__init__()
        self.theta = nn.Conv1d(latent, latent, 1)
        self.phi = nn.Conv1d(latent, latent, 1)
        self.g = nn.Conv1d(latent, latent, 1)
        self.out = nn.Conv1d(latent, latent, 1)
        self.dropout = nn.Dropout(dropout)
        self.scale = latent ** -0.5
        if zero_init_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, s: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """s [N, D, Ts], bank [N, D, Tl] -> [N, D, Ts]."""
        affinity = torch.matmul(self.theta(s).transpose(1, 2), self.phi(bank)) * self.scale
        attn = torch.softmax(affinity, dim=-1)                          # [N, Ts, Tl]
        t = torch.matmul(attn, self.g(bank).transpose(1, 2))            # [N, Ts, D]
        t = F.relu(F.layer_norm(t, t.shape[-1:])).transpose(1, 2)       # pre-activation
        return s + self.dropout(self.out(t))


class FeatureBankOperator(nn.Module):
    def __init__(self, channels: int = 64, bank_channels: int = 64, latent: int = 64,
                 num_layers: int = 2, dropout: float = 0.2, zero_init_out: bool = True):
        super().__init__()
        channels = int_arg("channels", channels)
        bank_channels = int_arg("bank_channels", bank_channels)
        latent, num_layers = int_arg("latent", latent), int_arg("num_layers", num_layers)
        dropout = rate_arg("dropout", dropout)
        zero_init_out = bool_arg("zero_init_out", zero_init_out)
        self.reduce = nn.Sequential(nn.Conv1d(channels, latent, 1), nn.Dropout(dropout))
        self.bank_reduce = nn.Sequential(nn.Conv1d(bank_channels, latent, 1),
                                         nn.Dropout(dropout))
        self.layers = nn.ModuleList(BankAttention(latent, dropout, zero_init_out)
                                    for _ in range(num_layers))

    def forward(self, short: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """short S [N, Cs, Ts], bank L [N, Cl, Tl] -> [N, latent, Ts]."""
        cs, cl = self.reduce[0].in_channels, self.bank_reduce[0].in_channels
        if (short.dim() != 3 or bank.dim() != 3 or short.shape[0] != bank.shape[0]
                or short.shape[1] != cs or bank.shape[1] != cl):
            raise AttnDeployError(f"lfb inputs: expected short [N, {cs}, Ts] and bank "
                                  f"[N, {cl}, Tl] with the same N, got {tuple(short.shape)} "
                                  f"and {tuple(bank.shape)}")
        check_nonempty("short", short, "NCT")
        check_nonempty("bank", bank, "NCT")
        s, bank = self.reduce(short), self.bank_reduce(bank)
        for layer in self.layers:
            s = layer(s, bank)
        return s


register(
    "lfb", FeatureBankOperator, title="Feature Bank Operator (non-local)",
    paper="Long-Term Feature Banks, CVPR19, arXiv:1812.05038", family="spatial",
    export_path="std",
    inputs=lambda c: {"short": ("N", c["channels"], "Ts"),
                      "bank": ("N", c["bank_channels"], "Tl")},
    outputs=("y",), dims={"N": 2, "Ts": 4, "Tl": 16}, defaults={"zero_init_out": False},
)
