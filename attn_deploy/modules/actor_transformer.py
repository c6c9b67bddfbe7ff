"""Actor-Transformer: a transformer encoder over the actors of a clip, with early modality fusion.

Paper: Gavrilyuk, Sanford, Javan, Snoek, "Actor-Transformers for Group Activity Recognition",
CVPR 2020, arXiv:2003.12737. Official code: not consulted; built from the paper's text.

Input: per-actor features ``A [N, K, D]`` (K actors, any number; e.g. RoI-pooled I3D RGB or
optical-flow features, or 2D pose features). Each modality is embedded by a linear layer to
``embed_dim`` and fused early (the paper compares early and late fusion of the static pose and
dynamic RGB/flow representations): ``fusion="sum"`` adds the embeddings, ``"concat"``
concatenates them (width ``len(modalities) * embed_dim``). The fused actors pass through
``num_layers`` standard transformer encoder layers (Vaswani et al.: multi-head self-attention,
then a ReLU feed-forward, each with residual and post-LayerNorm). Output ``[N, K, width]``.

Input of the exported model: one tensor ``A [N, K, sum(in_dims)]``, the modality features
concatenated along the last axis in ``modalities`` order (default one modality, ``("rgb",)``,
D = 32). One input keeps the exported interface the same for any set of modalities and lets K
and N stay dynamic; callers concatenate e.g. pose and flow features before the call.
Choices: no positional encoding (the actors form a set); late fusion (one transformer per
modality, scores averaged) is left to the caller, who can build one block per modality.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import (choice_arg, divisor_arg, int_arg, int_tuple_arg,
                                            rate_arg, str_tuple_arg)
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.multi_head_attention import MultiHeadAttention
from attn_deploy.modules.registry import register

FUSIONS = ("sum", "concat")


class TransformerEncoderLayer(nn.Module):
    """Post-LN encoder layer: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))``."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(dim, num_heads, head_gates=False, attn_drop=dropout,
                                       with_key_padding_mask=False)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ffn(x)))


class ActorTransformer(nn.Module):
    def __init__(self, in_dims: tuple[int, ...] = (32,), embed_dim: int = 32,
                 modalities: tuple[str, ...] = ("rgb",), fusion: str = "sum",
                 num_layers: int = 1, num_heads: int = 2, ffn_dim: int = 64,
                 dropout: float = 0.0):
        super().__init__()
        in_dims = int_tuple_arg("in_dims", in_dims)
        modalities = str_tuple_arg("modalities", modalities)
        if len(in_dims) != len(modalities):
            raise AttnDeployError(f"in_dims: expected one size per modality {modalities}, "
                                  f"got {in_dims}")
        fusion = choice_arg("fusion", fusion, FUSIONS)
        embed_dim, num_layers = int_arg("embed_dim", embed_dim), int_arg("num_layers", num_layers)
        num_heads, ffn_dim = int_arg("num_heads", num_heads), int_arg("ffn_dim", ffn_dim)
        dropout = rate_arg("dropout", dropout)
        self.in_dims, self.modalities, self.fusion = in_dims, modalities, fusion
        self.embed = nn.ModuleList(nn.Linear(d, embed_dim) for d in in_dims)
        width = embed_dim * (len(in_dims) if fusion == "concat" else 1)
        divisor_arg("num_heads", num_heads, "the fused width", width)
        self.layers = nn.ModuleList(TransformerEncoderLayer(width, num_heads, ffn_dim, dropout)
                                    for _ in range(num_layers))

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        """A: [N, K, sum(in_dims)], modality features concatenated -> [N, K, width]."""
        check_sequence("A", A, sum(self.in_dims))
        embedded = [e(f) for e, f in zip(self.embed, A.split(self.in_dims, dim=-1))]
        x = torch.cat(embedded, -1) if self.fusion == "concat" else sum(embedded)
        for layer in self.layers:
            x = layer(x)
        return x


register(
    "actor_transformer", ActorTransformer, title="Actor-Transformer (early fusion)",
    paper="Actor-Transformers, CVPR20, arXiv:2003.12737", family="sequence", export_path="std",
    inputs=lambda c: {"A": ("N", "K", sum(c["in_dims"]))}, outputs=("y",), dims={"N": 2, "K": 12},
)
