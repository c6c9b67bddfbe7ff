"""Co-attention of COSNet: vanilla, symmetric and channel-wise, with gating.

Paper: Lu, Wang, Ma, Shen, Shao, Porikli, "See More, Know More: Unsupervised Video Object
Segmentation with Co-Attention Siamese Networks", CVPR 2019. Official code:
https://github.com/carrierlxk/COSNet (``deeplab/siamese_model_conf.py``).

Two frames Fa, Fb [N, C, H, W] (flattened to C x HW) are related by the affinity
``S = Fb^T W Fa`` ([HW_b, HW_a]); then ``Za = Fb softmax_col(S)`` (each position of frame a
attends over frame b) and ``Zb = Fa softmax_row(S)^T``. ``mode`` picks W:
  - ``vanilla``: a learned C x C matrix;
  - ``symmetric``: ``W = P^T D P`` with P a C x C matrix (initialised orthogonal, as the paper
    requires; orthogonality is a property of trained weights, not re-imposed here) and D
    diagonal, computed as ``(P Fb)^T D (P Fa)``;
  - ``channel``: ``W = D`` diagonal (channel-wise co-attention).
Each attended map is gated, ``Z <- Z * sigmoid(w_f Z + b_f)`` with one 1x1 conv to a single
channel shared by both frames (paper: f_g with bias b_f; the official code shares one gate).

Outputs: the two gated attended features ``(Za, Zb)``, each [N, C, H, W]. The paper then
concatenates Z with the frame's own features for the segmentation head; that belongs to the
head, so the block stops at Z. Choices: no logit scaling (none in the paper or code); D is
initialised uniformly in [0.5, 1.5] so that the symmetric form is not the plain dot product at
init (with D = I and orthogonal P it would be).
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import choice_arg, int_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register

MODES = ("vanilla", "symmetric", "channel")


class CoAttention(nn.Module):
    def __init__(self, channels: int = 32, mode: str = "vanilla"):
        super().__init__()
        channels, mode = int_arg("channels", channels), choice_arg("mode", mode, MODES)
        self.channels, self.mode = channels, mode
        if mode == "vanilla":
            self.weight = nn.Linear(channels, channels, bias=False)
        if mode == "symmetric":
            self.project = nn.Linear(channels, channels, bias=False)
            nn.init.orthogonal_(self.project.weight)
        if mode in ("symmetric", "channel"):
            self.diag = nn.Parameter(torch.empty(channels).uniform_(0.5, 1.5))
        self.gate = nn.Conv2d(channels, 1, 1)

    def affinity(self, fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        """fa, fb: [N, HW, C] -> S = Fb^T W Fa: [N, HW_b, HW_a]."""
        if self.mode == "vanilla":
            return fb @ self.weight(fa).transpose(1, 2)
        if self.mode == "symmetric":
            fa, fb = self.project(fa), self.project(fb)
        return (fb * self.diag) @ fa.transpose(1, 2)

    def forward(self, fa: torch.Tensor, fb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fa, fb: [N, C, H, W] (same shape) -> (Za, Zb), each [N, C, H, W]."""
        check_nchw(fa, self.channels, "fa")
        check_nchw(fb, self.channels, "fb")
        if fa.shape != fb.shape:
            raise AttnDeployError(f"fa and fb must have the same shape, got {tuple(fa.shape)} "
                                  f"and {tuple(fb.shape)}")
        n, c, h, w = fa.shape
        a, b = fa.flatten(2), fb.flatten(2)                            # [N, C, HW]
        s = self.affinity(a.transpose(1, 2), b.transpose(1, 2))        # [N, HW_b, HW_a]
        za = (b @ s.softmax(1)).reshape(n, c, h, w)                    # attend over frame b
        zb = (a @ s.softmax(2).transpose(1, 2)).reshape(n, c, h, w)    # attend over frame a
        return za * torch.sigmoid(self.gate(za)), zb * torch.sigmoid(self.gate(zb))


register(
    "co_attention", CoAttention,
    title="Co-attention (vanilla, symmetric, channel-wise) with gating",
    paper="COSNet, See More, Know More: Unsupervised VOS with Co-Attention Siamese Networks, "
          "CVPR19",
    family="sequence", export_path="std",
    inputs=lambda c: {"fa": ("N", c["channels"], "H", "W"), "fb": ("N", c["channels"], "H", "W")},
    outputs=("za", "zb"), dims={"N": 2, "H": 12, "W": 12},
)
