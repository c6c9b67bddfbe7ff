"""Context-Transformer: affinity discovery and context aggregation for SSD prior boxes.

Paper: Yang, Wang, Chen, Liu, Qiao, "Context-Transformer: Tackling Object Confusion for
Few-Shot Detection", AAAI 2020, arXiv:2003.07304. Official code:
https://github.com/Ze-Yang/Context-Transformer (``models/RFB_Net_vgg.py``).

Input: one detection scale's prior-box map ``x [N, A*C, H, W]`` - the SSD classification head's
output with A prior boxes per location and a C-dim feature per box (the source-domain class
scores in the paper). Each (location, box) is a prior P_i [C], ordered (y, x, a) as SSD flattens
them. Contextual fields Q_j are the same map max-pooled (kernel = stride = s, ceil mode) for
every s in ``pool_sizes``, flattened the same way. Then, as in the paper and its code:
  - affinity discovery: ``A = softmax_j( theta(P_i) . phi(Q_j) )``,
  - context aggregation: ``L = A g(Q)``,
  - fusion: ``P^ = P + L * w_z`` (w_z a learned per-channel scale),
with theta, phi, g linear C -> C layers plus an identity shortcut (``theta(P) = fc(P) + P``,
the official form). Output: P^ in the input's layout, [N, A*C, H, W].

Choices: the official model pools each SSD scale once with its own kernel (3, 2, 2, 2, 1, 1 from
the largest map down) and attends over the fields of all scales; this block takes one scale and
builds multi-scale fields from it with ``pool_sizes`` (default 2 and 3). No 1/sqrt(C) logit
scale (none in the code). Init follows the code: kaiming-normal (fan_out) weights, zero biases,
and w_z = 0 (``scale_init``), which makes the block an identity at init; the registered block
uses ``scale_init=1.0`` so that parity tests see the attention path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import float_arg, int_arg, int_tuple_arg
from attn_deploy.modules.layers import check_nonempty
from attn_deploy.modules.registry import register


class ContextTransformer(nn.Module):
    def __init__(self, channels: int = 16, num_priors: int = 3,
                 pool_sizes: tuple[int, ...] = (2, 3), scale_init: float = 0.0):
        super().__init__()
        channels, num_priors = int_arg("channels", channels), int_arg("num_priors", num_priors)
        self.channels, self.num_priors = channels, num_priors
        self.pool_sizes = int_tuple_arg("pool_sizes", pool_sizes)
        scale_init = float_arg("scale_init", scale_init)
        self.theta = nn.Linear(channels, channels)
        self.phi = nn.Linear(channels, channels)
        self.g = nn.Linear(channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), float(scale_init)))
        for fc in (self.theta, self.phi, self.g):
            nn.init.kaiming_normal_(fc.weight, mode="fan_out")
            nn.init.zeros_(fc.bias)

    def boxes(self, x: torch.Tensor) -> torch.Tensor:
        """[N, A*C, h, w] -> [N, h*w*A, C], boxes ordered (y, x, a) as SSD flattens them."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, A*C, H, W] prior-box features -> [N, A*C, H, W] context-enhanced."""
        expected = self.num_priors * self.channels
        if x.dim() != 4 or x.shape[1] != expected:
            raise AttnDeployError(f"x: expected [N, {expected} (= num_priors {self.num_priors} "
                                  f"x channels {self.channels}), H, W], got {tuple(x.shape)}")
        check_nonempty("x", x, "NCHW")
        n, _, h, w = x.shape
        priors = self.boxes(x)                                               # [N, P, C]
        fields = torch.cat([self.boxes(x if s == 1 else F.max_pool2d(x, s, s, ceil_mode=True))
                            for s in self.pool_sizes], 1)                    # [N, Q, C]
        affinity = ((self.theta(priors) + priors) @ (self.phi(fields) + fields).transpose(1, 2))
        context = affinity.softmax(-1) @ (self.g(fields) + fields)           # [N, P, C]
        out = priors + context * self.scale
        return out.reshape(n, h, w, expected).permute(0, 3, 1, 2)


register(
    "context_transformer", ContextTransformer,
    title="Context-Transformer (affinity discovery + context aggregation)",
    paper="Context-Transformer, AAAI20, arXiv:2003.07304", family="sequence", export_path="std",
    inputs=lambda c: {"x": ("N", c["num_priors"] * c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12}, defaults={"scale_init": 1.0},
)
