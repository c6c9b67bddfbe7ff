"""Hard-concrete gates, one per attention head, with an L0 penalty.

Paper: Voita, Talbot, Moiseev, Sennrich, Titov, "Analyzing Multi-Head Self-Attention: Specialized
Heads Do the Heavy Lifting, the Rest Can Be Pruned", ACL 2019, arXiv:1905.09418; the gate is the
hard-concrete distribution of Louizos, Welling, Kingma, "Learning Sparse Neural Networks through
L0 Regularization", ICLR 2018, arXiv:1712.01312.
Official code: https://github.com/lena-voita/the-story-of-heads (TensorFlow).

Each head h has a learnable ``log_alpha[h]``. Training: ``u ~ U(0, 1)``,
``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``, stretched to ``(l, r)`` and clipped to
[0, 1], so a gate is exactly 0 or 1 with non-zero probability. The L0 penalty is the expected
number of open gates, ``sum_h sigmoid(log_alpha - beta * log(-l / r))``, differentiable in
``log_alpha``. Eval: the deterministic gate ``clip(sigmoid(log_alpha) * (r - l) + l, 0, 1)``
(Louizos et al.'s test-time estimator). Constants beta = 2/3, l = -0.1, r = 1.1 as in both papers.
Choice: ``log_alpha`` starts at ``init`` (default 3.0, every gate fully open at eval) so that an
untrained gated block computes plain multi-head attention.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class HardConcreteGate(nn.Module):
    def __init__(self, num_gates: int, init: float = 3.0, beta: float = 2 / 3,
                 stretch: tuple[float, float] = (-0.1, 1.1), eps: float = 1e-6):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.full((num_gates,), float(init)))
        self.beta, self.eps = beta, eps
        self.low, self.high = stretch

    def forward(self) -> torch.Tensor:
        """Gate values [num_gates]: a sample in training, the deterministic gate at eval."""
        if self.training:
            u = torch.rand_like(self.log_alpha).clamp(self.eps, 1 - self.eps)
            s = torch.sigmoid((u.log() - (1 - u).log() + self.log_alpha) / self.beta)
        else:
            s = torch.sigmoid(self.log_alpha)
        return (s * (self.high - self.low) + self.low).clamp(0.0, 1.0)

    def l0_penalty(self) -> torch.Tensor:
        """Expected number of non-zero gates (a differentiable scalar)."""
        shift = self.beta * math.log(-self.low / self.high)
        return torch.sigmoid(self.log_alpha - shift).sum()

    def closed(self) -> list[int]:
        """Indices of gates that are exactly 0 at eval."""
        with torch.no_grad():
            s = torch.sigmoid(self.log_alpha) * (self.high - self.low) + self.low
        return [i for i, v in enumerate(s.tolist()) if v <= 0.0]

    def keep(self, index: list[int]) -> None:
        """Keep only the gates at ``index`` (used when heads are pruned)."""
        self.log_alpha = nn.Parameter(self.log_alpha.detach()[index].clone())
