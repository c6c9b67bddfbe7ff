"""Show, Attend and Tell: soft attention with the gating scalar, and hard attention.

Paper: Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio, "Show, Attend and Tell:
Neural Image Caption Generation with Visual Attention", ICML 2015, arXiv:1502.03044.
Official code: https://github.com/kelvinxu/arctic-captions (Theano).

One decoder step: annotation vectors ``a [N, L, D]`` (CNN features of L image locations) and the
previous LSTM state ``h [N, Dh]``. ``f_att`` is the authors' MLP
``e_i = w^T tanh(W_a a_i + W_h h)``, ``alpha = softmax(e)`` over the L locations.
- soft: ``z = sum_i alpha_i a_i`` (the expected context).
- hard: ``z = a_s`` for one location s: sampled ``s ~ Multinoulli(alpha)`` (torch.multinomial)
  in training, ``argmax alpha`` at eval, so the exported (eval) model is deterministic.
``selector=True`` multiplies z by the gating scalar ``beta = sigmoid(f_beta(h))`` (the paper's
Sec. 4.2.1; in the authors' code it applies to both modes). Outputs ``z [N, D]`` and
``alpha [N, L]``. Choices: ``f_att`` has a bias on W_a and none on w (a constant added to every
e_i cancels in the softmax); at inference the hard mode takes the argmax location (the
project's deterministic-inference rule; the paper only defines the sampled form).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import bool_arg, choice_arg, int_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.registry import register

MODES = ("soft", "hard")


class ShowAttendTell(nn.Module):
    def __init__(self, dim: int = 64, hidden_dim: int = 32, attn_dim: int = 32,
                 mode: str = "soft", selector: bool = True):
        super().__init__()
        dim, hidden_dim = int_arg("dim", dim), int_arg("hidden_dim", hidden_dim)
        attn_dim, mode = int_arg("attn_dim", attn_dim), choice_arg("mode", mode, MODES)
        selector = bool_arg("selector", selector)
        self.dim, self.hidden_dim, self.mode = dim, hidden_dim, mode
        self.w_a = nn.Linear(dim, attn_dim)
        self.w_h = nn.Linear(hidden_dim, attn_dim, bias=False)
        self.w = nn.Linear(attn_dim, 1, bias=False)
        self.f_beta = nn.Linear(hidden_dim, 1) if selector else None

    def forward(self, a: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a: [N, L, D], h: [N, Dh] -> (z [N, D], alpha [N, L])."""
        check_sequence("a", a, self.dim)
        n = a.shape[0]
        if h.dim() != 2 or h.shape[0] != n or h.shape[1] != self.hidden_dim:
            raise AttnDeployError(f"h: expected [{n}, {self.hidden_dim}], got {tuple(h.shape)}")
        e = self.w(torch.tanh(self.w_a(a) + self.w_h(h)[:, None])).squeeze(-1)   # [N, L]
        alpha = e.softmax(-1)
        if self.mode == "soft":
            z = (alpha[:, None, :] @ a).squeeze(1)
        else:
            if self.training:
                index = torch.multinomial(alpha, 1)                                # [N, 1]
            else:
                index = alpha.argmax(-1, keepdim=True)
            z = torch.gather(a, 1, index[:, :, None].expand(-1, -1, a.shape[-1])).squeeze(1)
        if self.f_beta is not None:
            z = torch.sigmoid(self.f_beta(h)) * z
        return z, alpha


register(
    "show_attend_tell", ShowAttendTell, title="Show, Attend and Tell soft / hard attention",
    paper="ICML15, arXiv:1502.03044", family="sequence", export_path="std",
    inputs=lambda c: {"a": ("N", "L", c["dim"]), "h": ("N", c["hidden_dim"])},
    outputs=("z", "alpha"), dims={"N": 2, "L": 12},
)
