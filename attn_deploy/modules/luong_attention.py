"""Luong attention: global (dot, general, concat scores) and local (local-m, local-p).

Paper: Luong, Pham, Manning, "Effective Approaches to Attention-based Neural Machine
Translation", EMNLP 2015, arXiv:1508.04025. Official code: https://github.com/lmthang/nmt.matlab (Matlab).

One decoder step: target state ``h_t [N, D]`` attends over source states ``H [N, S, D]``.
Scores: dot ``h_t . h_s``; general ``h_t^T W_a h_s``; concat ``v_a^T tanh(W_a [h_t; h_s])``
(computed as ``tanh(W_t h_t + W_s h_s)``, W_a split in two, the same function). Global: the
alignment ``a_t = softmax(score)`` over all unpadded source positions. Local: only positions
with ``|s - p_t| <= window`` (the paper's D) take part; local-m sets ``p_t = t`` (the input
``position``), local-p predicts ``p_t = (S_n - 1) * sigmoid(v_p^T tanh(W_p h_t))`` and
multiplies the alignment by the Gaussian ``exp(-(s - p_t)^2 / (2 sigma^2))``, sigma = D / 2.
Outputs: the attentional hidden state ``h~_t = tanh(W_c [c_t; h_t])`` with
``c_t = sum_s a_t(s) h_s``, and the alignment weights ``a_t [N, S]``.

Run-time inputs of the exported model: ``source_mask`` bool [N, S], True at padded positions
(right padding); ``position`` int64 [N], the decoder step t of each row (local-m only).
Choices: positions are 0-based and S_n is the unpadded length of a row, so local-p's p_t lies
in [0, S_n - 1] (the paper: p_t in [0, S] over 1-based positions) and local-m's p_t is clamped to
[0, S_n - 1]; either way the window holds at least one real token when the row has one. A
fully padded row attends to nothing: its alignment is all zeros and c_t = 0, so
``h~_t = tanh(W_c [0; h_t])``, the same in eager PyTorch and in the exported model.
Like the paper, local-p's Gaussian is applied after the softmax (weights do not re-normalise).
No biases (the paper writes none). The location-based score is left out: it needs a fixed S.
Because the exported model takes inputs positionally (h_t, H, source_mask, position),
local-m needs ``with_source_mask=True`` (pass an all-False mask when nothing is padded).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import bool_arg, choice_arg, int_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.multi_head_attention import (check_padding_mask, masked_softmax,
                                                      random_padding_mask)
from attn_deploy.modules.registry import register

SCORES = ("dot", "general", "concat")
ATTENTIONS = ("global", "local-m", "local-p")


class LuongAttention(nn.Module):
    def __init__(self, dim: int = 32, score: str = "general", attention: str = "global",
                 window: int = 2, with_source_mask: bool = True):
        super().__init__()
        dim, window = int_arg("dim", dim), int_arg("window", window)
        score = choice_arg("score", score, SCORES)
        attention = choice_arg("attention", attention, ATTENTIONS)
        with_source_mask = bool_arg("with_source_mask", with_source_mask)
        if attention == "local-m" and not with_source_mask:
            raise AttnDeployError("with_source_mask: local-m takes (h_t, H, source_mask, "
                                  "position) positionally, so it needs with_source_mask=True")
        self.dim, self.score, self.attention, self.window = dim, score, attention, window
        self.with_source_mask = with_source_mask
        if score == "general":
            self.w_a = nn.Linear(dim, dim, bias=False)
        elif score == "concat":
            self.w_t = nn.Linear(dim, dim, bias=False)
            self.w_s = nn.Linear(dim, dim, bias=False)
            self.v_a = nn.Linear(dim, 1, bias=False)
        if attention == "local-p":
            self.w_p = nn.Linear(dim, dim, bias=False)
            self.v_p = nn.Linear(dim, 1, bias=False)
        self.w_c = nn.Linear(2 * dim, dim, bias=False)

    def _scores(self, h_t: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """[N, S] scores of h_t against every source state."""
        if self.score == "concat":
            return self.v_a(torch.tanh(self.w_t(h_t)[:, None] + self.w_s(src))).squeeze(-1)
        q = h_t @ self.w_a.weight if self.score == "general" else h_t   # h_t^T W_a
        return (src @ q[:, :, None]).squeeze(-1)

    def forward(self, h_t: torch.Tensor, H: torch.Tensor, source_mask: torch.Tensor | None = None,
                position: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """h_t: [N, D], H: [N, S, D], source_mask: bool [N, S] (True = padded),
        position: int [N] (local-m) -> (h~_t [N, D], a_t [N, S])."""
        check_sequence("H", H, self.dim)
        n, s = H.shape[0], H.shape[1]
        if h_t.dim() != 2 or h_t.shape[0] != n or h_t.shape[1] != self.dim:
            raise AttnDeployError(f"h_t: expected [{n}, {self.dim}], got {tuple(h_t.shape)}")
        scores = self._scores(h_t, H)
        valid = torch.ones_like(scores, dtype=torch.bool)
        if source_mask is not None:
            check_padding_mask("source_mask", source_mask, n, s)
            valid = ~source_mask
        if self.attention != "global":
            src_len = valid.sum(-1, keepdim=True).to(H.dtype)          # S_n, [N, 1]
            if self.attention == "local-m":
                if position is None or position.dtype.is_floating_point or position.dim() != 1 \
                        or position.shape[0] != n:
                    raise AttnDeployError(f"position: local-m expects an integer [{n}] tensor, "
                                          f"got {None if position is None else position.shape}")
                p_t = torch.minimum(position[:, None].to(H.dtype).clamp(min=0), src_len - 1)
            else:
                p_t = (src_len - 1) * torch.sigmoid(self.v_p(torch.tanh(self.w_p(h_t))))
            dist = torch.arange(s, device=H.device).to(H.dtype)[None, :] - p_t   # [N, S]
            valid = valid & (dist.abs() <= self.window)
        align = masked_softmax(scores, ~valid)       # a fully masked source: all zeros
        if self.attention == "local-p":
            sigma = self.window / 2
            align = align * torch.exp(-dist.square() / (2 * sigma ** 2))
        context = (align[:, None, :] @ H).squeeze(1)                          # c_t, [N, D]
        h_tilde = torch.tanh(self.w_c(torch.cat([context, h_t], dim=-1)))
        return h_tilde, align


def _luong_inputs(c):
    d = c["dim"]
    inputs = {"h_t": ("N", d), "H": ("N", "S", d)}
    if c["with_source_mask"]:
        inputs["source_mask"] = ("N", "S")
    if c["attention"] == "local-m":
        inputs["position"] = ("N",)
    return inputs


def _luong_example(shapes, g, c):
    n, s, d = shapes["H"]
    out = [torch.randn(n, d, generator=g), torch.randn(n, s, d, generator=g)]
    if c["with_source_mask"]:
        out.append(random_padding_mask(n, s, g))
    if c["attention"] == "local-m":
        out.append(torch.randint(0, s, (n,), generator=g))
    return tuple(out)


register(
    "luong", LuongAttention, title="Luong global and local attention",
    paper="EMNLP15, arXiv:1508.04025", family="sequence", export_path="std",
    inputs=_luong_inputs, outputs=("h_tilde", "align"), dims={"N": 2, "S": 10},
    input_dtypes={"source_mask": torch.bool, "position": torch.int64}, example=_luong_example,
)
