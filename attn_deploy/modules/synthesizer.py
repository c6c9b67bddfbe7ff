"""Synthesizer attention: dense, random, factorized, and mixtures with dot-product attention.

Paper: Tay, Bahri, Metzler, Juan, Zhao, Zheng, "Synthesizer: Rethinking Self-Attention in
Transformer Models", ICML 2021, arXiv:2005.00743.
Official code: Mesh TensorFlow (``mesh_tensorflow/transformer/attention.py``).

Per head, the attention logits B [L, L] are synthesised instead of computed as Q K^T:
- ``dense``: ``B_i = F(x_i)``, a two-layer MLP (``W2 relu(W1 x + b1) + b2``) mapping d to l.
- ``random``: ``B = R``, an l x l matrix, trainable or fixed (``random_trainable``).
- ``factorized_dense``: ``A = F_A(x_i)`` in R^a, ``B = F_B(x_i)`` in R^b with a * b = l, and
  ``C[j] = A[j mod a] * B[j div a]`` (every product of the two factors once: the paper's
  "repeat A b times, B a times").
- ``factorized_random``: ``R = R1 R2^T`` with R1, R2 of shape l x k.
- ``dot``: scaled dot-product logits ``Q K^T / sqrt(d_h)``.
``mode`` joins any of these with "+" (e.g. ``"dense+dot"``); a mixture sums the logits with
weights ``softmax(w)`` over learnable ``w`` (the paper's alphas that sum to 1), then
``Y = softmax(sum_i alpha_i B_i) G(x)`` with G the value projection, heads concatenated and
projected. Choices where the paper is silent: the factorized MLPs share their first layer.

Maximum length: dense and random logits have l = ``max_len`` columns. An input of length
L <= max_len uses the first L rows and columns; a longer one raises AttnDeployError in eager
mode, and the exported model's L axis is declared with that upper bound (``max_dims``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import bool_arg, divisor_arg, int_arg, int_tuple_arg
from attn_deploy.modules.layers import check_sequence
from attn_deploy.modules.registry import register

COMPONENTS = ("dense", "random", "factorized_dense", "factorized_random", "dot")


def parse_mode(mode: str) -> tuple[str, ...]:
    if not isinstance(mode, str):
        raise AttnDeployError(f"mode: expected components from {list(COMPONENTS)} joined by "
                              f"'+', got {mode!r} ({type(mode).__name__})")
    parts = tuple(p.strip() for p in mode.split("+"))
    bad = [p for p in parts if p not in COMPONENTS]
    if bad or len(set(parts)) != len(parts):
        raise AttnDeployError(f"mode: expected distinct components from {list(COMPONENTS)} "
                              f"joined by '+', got {mode!r}")
    return parts


def _factor_pair(n: int) -> tuple[int, int]:
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


class Synthesizer(nn.Module):
    def __init__(self, dim: int = 32, num_heads: int = 2, max_len: int = 16,
                 mode: str = "dense", random_trainable: bool = True, factor_rank: int = 4,
                 dense_factors: tuple[int, int] | None = None, qkv_bias: bool = True):
        super().__init__()
        self.parts = parse_mode(mode)
        dim = int_arg("dim", dim)
        num_heads = divisor_arg("num_heads", int_arg("num_heads", num_heads), "dim", dim)
        max_len, factor_rank = int_arg("max_len", max_len), int_arg("factor_rank", factor_rank)
        random_trainable = bool_arg("random_trainable", random_trainable)
        qkv_bias = bool_arg("qkv_bias", qkv_bias)
        if dense_factors is not None:
            dense_factors = int_tuple_arg("dense_factors", dense_factors, length=2)
        self.dim, self.num_heads, self.max_len = dim, num_heads, max_len
        self.head_dim = dim // num_heads
        h, l = num_heads, max_len
        if "dense" in self.parts:
            self.dense = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, h * l))
        if "factorized_dense" in self.parts:
            a, b = dense_factors or _factor_pair(l)
            if a * b != l:
                raise AttnDeployError(f"dense_factors: expected a * b == max_len={l}, "
                                      f"got {dense_factors}")
            self.factors = (a, b)
            self.fd_hidden = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
            self.fd_a, self.fd_b = nn.Linear(dim, h * a), nn.Linear(dim, h * b)
        if "random" in self.parts:
            self._add_random("random", (h, l, l), random_trainable)
        if "factorized_random" in self.parts:
            self._add_random("r1", (h, l, factor_rank), random_trainable)
            self._add_random("r2", (h, l, factor_rank), random_trainable)
        if "dot" in self.parts:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if len(self.parts) > 1:
            self.mix = nn.Parameter(torch.zeros(len(self.parts)))

    def _add_random(self, name: str, shape: tuple[int, ...], trainable: bool) -> None:
        t = torch.randn(shape) / math.sqrt(shape[-1])
        if trainable:
            self.register_parameter(name, nn.Parameter(t))
        else:
            self.register_buffer(name, t)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[N, L, H * c] -> [N, H, L, c]."""
        return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def _logits(self, part: str, x: torch.Tensor, length) -> torch.Tensor:
        """Logits [N or 1, H, L, L] of one component."""
        if part == "dense":
            return self._heads(self.dense(x))[..., :length]
        if part == "factorized_dense":
            hid = self.fd_hidden(x)
            a, b = self._heads(self.fd_a(hid)), self._heads(self.fd_b(hid))
            return (b[..., :, None] * a[..., None, :]).flatten(-2)[..., :length]
        if part == "random":
            return self.random[None, :, :length, :length]
        if part == "factorized_random":
            r1, r2 = self.r1[:, :length], self.r2[:, :length]
            return (r1 @ r2.transpose(-2, -1))[None]
        q, k = self._heads(self.q(x)), self._heads(self.k(x))
        return (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, L, dim] with L <= max_len (for dense/random parts) -> [N, L, dim]."""
        check_sequence("x", x, self.dim)
        length = x.shape[1]
        if self.parts != ("dot",) and length > self.max_len:
            raise AttnDeployError(f"x: sequence length {length} exceeds max_len={self.max_len} "
                                  f"of the {'+'.join(self.parts)} synthesizer")
        logits = [self._logits(p, x, length) for p in self.parts]
        if len(logits) == 1:
            mixed = logits[0]
        else:
            w = self.mix.softmax(0)
            mixed = sum(w[i] * t for i, t in enumerate(logits))
        y = mixed.softmax(-1) @ self._heads(self.v(x))                    # [N, H, L, dh]
        return self.proj(y.transpose(1, 2).flatten(2))


register(
    "synthesizer", Synthesizer, title="Synthesizer (dense, random, factorized, mixtures)",
    paper="Synthesizer, ICML21, arXiv:2005.00743", family="sequence", export_path="std",
    inputs=lambda c: {"x": ("N", "L", c["dim"])}, outputs=("y",), dims={"N": 2, "L": 8},
    max_dims=lambda c: {"L": c["max_len"]} if parse_mode(c["mode"]) != ("dot",) else {},
)
