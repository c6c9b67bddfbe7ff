"""Bilinear Attention Networks (BAN): bilinear attention maps and multi-glimpse pooling.

Paper: Kim, Jun, Zhang, "Bilinear Attention Networks", NeurIPS 2018, arXiv:1805.07932.
Official code: https://github.com/jnhwkim/ban-vqa (PyTorch).

Two inputs: visual objects ``V [N, Nv, Dv]`` and question tokens ``Q [N, Nq, Dq]``.
Attention maps (low-rank bilinear, one per glimpse g): ``A_g = softmax(((1 p_g^T) o relu(V U))
relu(Q W)^T + b_g)``, the softmax over all Nv * Nq pairs jointly. Bilinear pooling of glimpse g:
``f_k = sum_ij A_g[i, j] relu(V U'_g)[i, k] relu(Q_g W'_g)[j, k]``, then sum-pooling over groups
of ``pool_k`` consecutive k (the paper's rank-k trick, k = 3). Residual learning over glimpses:
``Q_{g+1} = Q_g + 1 . (P_g f)^T`` (the joint vector projected back to Dq and added to every
token), and the output is ``sum_j Q_G[j]`` [N, Dq] with the maps ``A [N, G, Nv, Nq]``.
Choices as in the authors' code: all G maps come from the input question (computed once);
each glimpse has its own pooling projections; P_g is linear with no activation; no masking of
padded objects (the official code masks all-zero object vectors; pass real objects only).
Departure from the authors' code: one ``pool_k`` (default 3) sets the rank of both the attention
maps and the glimpses' pooling; the official ``build_ban`` uses k = 3 for the attention net and
k = 1 for the pooling nets.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import int_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.registry import register


def _relu_linear(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU())


class BilinearAttention(nn.Module):
    def __init__(self, v_dim: int = 32, q_dim: int = 32, hidden: int = 32, glimpses: int = 2,
                 pool_k: int = 3):
        super().__init__()
        v_dim = int_arg("v_dim", v_dim)
        q_dim = int_arg("q_dim", q_dim)
        hidden = int_arg("hidden", hidden)
        glimpses, pool_k = int_arg("glimpses", glimpses), int_arg("pool_k", pool_k)
        self.v_dim, self.q_dim, self.hidden, self.pool_k = v_dim, q_dim, hidden, pool_k
        joint = hidden * pool_k
        self.att_v, self.att_q = _relu_linear(v_dim, joint), _relu_linear(q_dim, joint)
        self.att_p = nn.Parameter(torch.randn(glimpses, joint) / joint ** 0.5)
        self.att_b = nn.Parameter(torch.zeros(glimpses))
        self.pool_v = nn.ModuleList(_relu_linear(v_dim, joint) for _ in range(glimpses))
        self.pool_q = nn.ModuleList(_relu_linear(q_dim, joint) for _ in range(glimpses))
        self.q_proj = nn.ModuleList(nn.Linear(hidden, q_dim) for _ in range(glimpses))

    def attention_maps(self, V: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
        """[N, G, Nv, Nq] maps, each summing to 1 over its Nv * Nq entries."""
        v, q = self.att_v(V)[:, None], self.att_q(Q)[:, None]              # [N, 1, Nv|Nq, J]
        logits = (v * self.att_p[None, :, None, :]) @ q.transpose(-2, -1)   # [N, G, Nv, Nq]
        logits = logits + self.att_b[None, :, None, None]
        return logits.flatten(2).softmax(-1).view_as(logits)

    def forward(self, V: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V: [N, Nv, Dv], Q: [N, Nq, Dq] -> (joint [N, Dq], maps [N, G, Nv, Nq])."""
        check_sequence("V", V, self.v_dim)
        check_sequence("Q", Q, self.q_dim)
        if Q.shape[0] != V.shape[0]:
            raise AttnDeployError(f"Q: expected batch {V.shape[0]} (as V), got {Q.shape[0]}")
        maps = self.attention_maps(V, Q)
        for g, (pool_v, pool_q, proj) in enumerate(zip(self.pool_v, self.pool_q, self.q_proj)):
            v, q = pool_v(V), pool_q(Q)                                     # [N, Nv|Nq, J]
            f = ((v.transpose(1, 2) @ maps[:, g]) * q.transpose(1, 2)).sum(-1)  # [N, J]
            f = f.unflatten(-1, (self.hidden, self.pool_k)).sum(-1)         # [N, hidden]
            Q = Q + proj(f)[:, None, :]
        return Q.sum(1), maps


register(
    "ban", BilinearAttention, title="Bilinear attention maps and multi-glimpse pooling",
    paper="BAN, NeurIPS18, arXiv:1805.07932", family="sequence", export_path="std",
    inputs=lambda c: {"V": ("N", "Nv", c["v_dim"]), "Q": ("N", "Nq", c["q_dim"])},
    outputs=("joint", "maps"), dims={"N": 2, "Nv": 10, "Nq": 8},
)
