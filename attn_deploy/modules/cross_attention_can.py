"""Cross Attention Module (CAM) with the meta-fusion layer, from CAN.

Paper: Hou, Chang, Ma, Shan, Chen, "Cross Attention Network for Few-shot Classification",
NeurIPS 2019, arXiv:1910.07677. Official code: https://github.com/blue-blue272/fewshot-CAN
(``torchFewShot/models/cam.py``).

Class feature P and query feature Q, [N, C, H, W] each (one (class, query) pair per batch
item), m = H*W positions:
  1. correlation layer: ``R^p[i, j] = cos(P_i, Q_j)`` ([m, m]), ``R^q = (R^p)^T``;
  2. meta-fusion: a kernel over the partner's positions,
     ``w^p = W2 relu(W1 GAP(R^p))`` where GAP averages R^p over P's own positions, giving an
     m-vector; W1: m -> m/r and W2: m/r -> m with r = 6 (official: 36 -> 6 -> 36);
  3. ``A^p_i = softmax_i( mean_j(w^p_j R^p[i, j]) / tau )`` with tau = 0.025, a spatial
     attention map over P's positions; the same for Q with R^q and the same W1, W2;
  4. ``P' = P * (1 + A^p)``, ``Q' = Q * (1 + A^q)`` (residual attention). Outputs (P', Q').

H and W are fixed: W1 and W2 act on vectors of length m = H*W, so their weights depend on the
map size (the official layers are sized for the backbone's 6 x 6 output). ``height`` and
``width`` are constructor arguments and the spec's H, W are ints; only N is dynamic.

Choices: the official code's ``mean_j`` (the paper writes a dot product w^T r; the two differ by
the constant m, which W2 absorbs) and its conv+BN for W1 are followed as a linear layer with
bias (an eval-mode BN folds into it). Cosine similarity uses ``x / max(||x||, 1e-12)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import float_arg, int_arg, ratio_arg
from attn_deploy.modules.layers import check_nonempty
from attn_deploy.modules.registry import register


class CrossAttentionCAN(nn.Module):
    def __init__(self, channels: int = 32, height: int = 6, width: int = 6,
                 rd_ratio: float = 1 / 6, temperature: float = 0.025):
        super().__init__()
        channels = int_arg("channels", channels)
        height, width = int_arg("height", height), int_arg("width", width)
        rd_ratio = ratio_arg("rd_ratio", rd_ratio)
        temperature = float_arg("temperature", temperature, min=0, min_open=True)
        m = height * width
        self.channels, self.size, self.temperature = channels, (height, width), temperature
        rd = max(1, round(m * rd_ratio))
        self.meta_learner = nn.Sequential(nn.Linear(m, rd), nn.ReLU(), nn.Linear(rd, m))

    def attention(self, r: torch.Tensor) -> torch.Tensor:
        """r: [N, m_own, m_other] correlations -> [N, m_own] attention over own positions."""
        kernel = self.meta_learner(r.mean(1))                          # [N, m_other]
        fused = (r * kernel[:, None, :]).mean(2)                       # [N, m_own]
        return (fused / self.temperature).softmax(1)

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p (class), q (query): [N, C, H, W] with the configured H, W -> (P', Q') same shapes."""
        for name, f in (("p", p), ("q", q)):
            if f.dim() != 4 or tuple(f.shape[1:]) != (self.channels, *self.size):
                raise AttnDeployError(f"{name}: expected [N, {self.channels}, {self.size[0]}, "
                                      f"{self.size[1]}], got {tuple(f.shape)}")
            check_nonempty(name, f, "NCHW")
        if p.shape[0] != q.shape[0]:
            raise AttnDeployError(f"p and q must have the same batch size, got {p.shape[0]} "
                                  f"and {q.shape[0]}")
        n, c, h, w = p.shape
        pn = F.normalize(p.flatten(2), dim=1, eps=1e-12)               # [N, C, m]
        qn = F.normalize(q.flatten(2), dim=1, eps=1e-12)
        r_p = pn.transpose(1, 2) @ qn                                  # [N, m_p, m_q]
        a_p = self.attention(r_p).reshape(n, 1, h, w)
        a_q = self.attention(r_p.transpose(1, 2)).reshape(n, 1, h, w)
        return p * (1 + a_p), q * (1 + a_q)


register(
    "can_cross_attention", CrossAttentionCAN,
    title="Cross Attention Module with meta-fusion layer",
    paper="Cross Attention Network for Few-shot Classification, NeurIPS19, arXiv:1910.07677",
    family="sequence", export_path="std",
    inputs=lambda c: {"p": ("N", c["channels"], c["height"], c["width"]),
                      "q": ("N", c["channels"], c["height"], c["width"])},
    outputs=("p_att", "q_att"), dims={"N": 2},
)
