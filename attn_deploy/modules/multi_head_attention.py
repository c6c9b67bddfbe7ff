"""Multi-head self-attention with key-padding and causal masks and prunable head gates.

Papers: Vaswani et al., "Attention Is All You Need", NeurIPS 2017, arXiv:1706.03762; head gates
from Voita et al., "Analyzing Multi-Head Self-Attention: Specialized Heads Do the Heavy Lifting,
the Rest Can Be Pruned", ACL 2019, arXiv:1905.09418 (see ``_head_gates.py``).
Official code: tensor2tensor (Vaswani); https://github.com/lena-voita/the-story-of-heads (Voita).

``MultiHead(x) = Concat_h(g_h * head_h) W_O`` with ``head_h = softmax(Q_h K_h^T / sqrt(d_h)) V_h``
and ``g_h`` the hard-concrete gate of head h (sampled in training, deterministic at eval;
``l0_penalty()`` is the regulariser to add to the loss). ``prune_heads()`` then deletes the
heads whose eval gate is exactly 0: their rows of W_Q, W_K, W_V and columns of W_O go, so the
pruned module computes the same outputs with smaller weights and a smaller exported model.

Masks (run-time inputs of the exported model): ``key_padding_mask`` is bool [N, L], True at padded
key positions (PyTorch's convention), which ONNX Runtime and TensorRT (BOOL network inputs) both
accept. ``causal=True`` builds the upper-triangular mask in the graph (ONNX Trilu). Fully masked
rows: a query with no key left to attend to (every key padded, or ``causal=True`` with left
padding, for the queries before the first real token) gets all-zero attention weights, so its
output is the output projection's bias alone; the same in eager PyTorch and in the exported model
(PyTorch's own attention gives NaN rows there). Choices: biases on the projections (tensor2tensor
has none; PyTorch's nn.MultiheadAttention has them), self-attention only (x is query, key and
value), d_h = dim / num_heads unless ``head_dim`` is given.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules._head_gates import HardConcreteGate
from attn_deploy.modules.arg_checks import bool_arg, float_arg, int_arg, optional_int_arg, rate_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.registry import register


def check_padding_mask(name: str, mask: torch.Tensor, n, length) -> None:
    """Raise unless ``mask`` is a bool [n, length] tensor (True = padded). A row may be padded
    entirely: the blocks give such a row zero attention weights (see :func:`masked_softmax`)."""
    if mask.dtype != torch.bool:
        raise AttnDeployError(f"{name}: expected a bool tensor (True = padded), got {mask.dtype}")
    if mask.dim() != 2 or mask.shape[0] != n or mask.shape[1] != length:
        raise AttnDeployError(f"{name}: expected shape [{n}, {length}], got {tuple(mask.shape)}")


def masked_softmax(logits: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of ``logits`` with ``masked`` positions (bool, broadcastable,
    True = masked) weighted 0; a row whose positions are all masked gets all zeros.

    The fill is the dtype's lowest finite value rather than -inf: a fully masked row then stays
    finite (uniform) before the ``Where`` zeroes it, so neither the exported graph nor the
    backward pass ever sees a NaN; every other row is bit-identical to a -inf fill (exp
    underflows to exactly 0)."""
    weights = logits.masked_fill(masked, torch.finfo(logits.dtype).min).softmax(-1)
    return torch.where(masked.all(-1, keepdim=True), 0.0, weights)


def random_padding_mask(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Right-padding mask [n, length] (True = padded) with lengths >= 1 that differ per row:
    row 0 unpadded, row 1 half padded, further rows random."""
    lengths = torch.randint(1, length + 1, (n,), generator=generator)
    lengths[0] = length
    if n > 1:
        lengths[1] = max(1, length // 2)
    return torch.arange(length)[None, :] >= lengths[:, None]


class MultiHeadAttention(nn.Module):
    def __init__(self, dim: int = 32, num_heads: int = 4, head_dim: int | None = None,
                 qkv_bias: bool = True, causal: bool = False,
                 with_key_padding_mask: bool = True, head_gates: bool = True,
                 gate_init: float = 3.0, attn_drop: float = 0.0):
        super().__init__()
        dim, num_heads = int_arg("dim", dim), int_arg("num_heads", num_heads)
        head_dim = optional_int_arg("head_dim", head_dim)
        qkv_bias, causal = bool_arg("qkv_bias", qkv_bias), bool_arg("causal", causal)
        with_key_padding_mask = bool_arg("with_key_padding_mask", with_key_padding_mask)
        head_gates = bool_arg("head_gates", head_gates)
        gate_init, attn_drop = float_arg("gate_init", gate_init), rate_arg("attn_drop", attn_drop)
        if head_dim is None and dim % num_heads:
            raise AttnDeployError(f"num_heads: expected a divisor of dim={dim} "
                                  f"(or give head_dim), got {num_heads}")
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = head_dim or dim // num_heads
        self.causal, self.with_key_padding_mask = causal, with_key_padding_mask
        inner = num_heads * self.head_dim
        self.q = nn.Linear(dim, inner, bias=qkv_bias)
        self.k = nn.Linear(dim, inner, bias=qkv_bias)
        self.v = nn.Linear(dim, inner, bias=qkv_bias)
        self.proj = nn.Linear(inner, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.gate = HardConcreteGate(num_heads, gate_init) if head_gates else None
        self.kept_heads = list(range(num_heads))  # original ids of the heads still here

    def forward(self, x: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [N, L, dim], key_padding_mask: bool [N, L] (True = padded) -> [N, L, dim]."""
        check_sequence("x", x, self.dim)
        n, length = x.shape[0], x.shape[1]
        q, k, v = (p(x).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
                   for p in (self.q, self.k, self.v))                     # [N, H, L, dh]
        scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)         # [N, H, L, L]
        masked = None                                     # bool, broadcasts to [N, H, L, L]
        if self.causal:
            masked = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        if key_padding_mask is not None:
            check_padding_mask("key_padding_mask", key_padding_mask, n, length)
            padded = key_padding_mask[:, None, None, :]
            masked = padded if masked is None else masked | padded
        attn = scores.softmax(-1) if masked is None else masked_softmax(scores, masked)
        heads = self.attn_drop(attn) @ v                                   # [N, H, L, dh]
        if self.gate is not None:
            heads = heads * self.gate()[:, None, None]
        return self.proj(heads.transpose(1, 2).flatten(2))

    def l0_penalty(self) -> torch.Tensor:
        """Expected number of open head gates (0 without gates); add ``lambda *`` it to the loss."""
        if self.gate is None:
            return self.q.weight.new_zeros(())
        return self.gate.l0_penalty()

    @torch.no_grad()
    def prune_heads(self, heads: list[int] | None = None) -> list[int]:
        """Delete ``heads`` (positions in the current module; default: every head whose eval
        gate is exactly 0) in place. Returns the original ids of the heads removed."""
        if heads is None:
            heads = self.gate.closed() if self.gate is not None else []
        bad = [h for h in heads if not 0 <= h < self.num_heads]
        if bad:
            raise AttnDeployError(f"heads: expected indices in [0, {self.num_heads}), got {bad}")
        drop = set(heads)
        keep = [h for h in range(self.num_heads) if h not in drop]
        if not keep:
            raise AttnDeployError(f"prune_heads: all {self.num_heads} heads would be removed; "
                                  "a block without heads only outputs the projection bias")
        removed = [self.kept_heads[h] for h in sorted(drop)]
        if not removed:
            return []
        dh = self.head_dim
        rows = torch.cat([torch.arange(h * dh, (h + 1) * dh) for h in keep])
        for name in ("q", "k", "v"):
            setattr(self, name, _take_rows(getattr(self, name), rows))
        old = self.proj
        self.proj = nn.Linear(len(rows), self.dim).to(old.weight)
        self.proj.weight.copy_(old.weight[:, rows])
        self.proj.bias.copy_(old.bias)
        if self.gate is not None:
            self.gate.keep(keep)
        self.kept_heads = [self.kept_heads[h] for h in keep]
        self.num_heads = len(keep)
        return removed


def _take_rows(layer: nn.Linear, rows: torch.Tensor) -> nn.Linear:
    new = nn.Linear(layer.in_features, len(rows), bias=layer.bias is not None).to(layer.weight)
    new.weight.copy_(layer.weight[rows])
    if layer.bias is not None:
        new.bias.copy_(layer.bias[rows])
    return new


def _mha_inputs(c):
    inputs = {"x": ("N", "L", c["dim"])}
    if c["with_key_padding_mask"]:
        inputs["key_padding_mask"] = ("N", "L")
    return inputs


def _mha_example(shapes, g, c):
    n, length, dim = shapes["x"]
    x = torch.randn(n, length, dim, generator=g)
    if not c["with_key_padding_mask"]:
        return (x,)
    return x, random_padding_mask(n, length, g)


register(
    "mha", MultiHeadAttention, title="Multi-head attention with prunable heads",
    paper="Transformer, NeurIPS17, arXiv:1706.03762; head gates ACL19, arXiv:1905.09418",
    family="sequence", export_path="std", inputs=_mha_inputs, outputs=("y",),
    dims={"N": 2, "L": 10}, input_dtypes={"key_padding_mask": torch.bool}, example=_mha_example,
)
