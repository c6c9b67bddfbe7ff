"""Convolutional Block Attention Module (CBAM).

Paper: Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018,
arXiv:1807.06521. Official code: https://github.com/Jongchan/attention-module (PyTorch).

Channel attention, then spatial attention, applied in sequence:
  Mc = sigmoid(MLP(AvgPool(x)) + MLP(MaxPool(x)))         (shared MLP, reduction r = 16)
  x' = x * Mc
  Ms = sigmoid(conv7x7([mean_c(x'); max_c(x')]))
  y  = x' * Ms
Choices where the paper is silent, as the official code does: the MLP layers carry biases with
a ReLU between; the 7x7 conv has no bias and is followed by BatchNorm (``spatial_norm=False``
gives a plain conv with bias instead). The descriptor order is the paper's [avg; max] (the
official code stacks [max; mean]; only the order of the conv's two input channels differs).

Deployment: ONNX Runtime ran the public CBAM 2.5x slower than eager on CPU, from per-node
overhead on tiny tensors. So the graph is kept small: pooling is ReduceMean/ReduceMax (no
pooling modules or flatten/linear reshapes), and the shared MLP runs once, as 1x1 convs over
the two descriptors laid side by side along the width ([N, C, 1, 2]), summed afterwards.
"""
from __future__ import annotations

import torch
from torch import nn

from attn_deploy.modules.arg_checks import bool_arg, int_arg
from attn_deploy.modules.layers import check_nchw, create_act, reduced_channels
from attn_deploy.modules.registry import register


class CBAM(nn.Module):
    def __init__(self, channels: int = 64, rd_ratio: float = 1 / 16,
                 rd_channels: int | None = None, spatial_kernel_size: int = 7,
                 spatial_norm: bool = True, act_layer="relu", gate_layer="sigmoid"):
        super().__init__()
        rd = reduced_channels(channels, rd_ratio, rd_channels)
        spatial_kernel_size = int_arg("spatial_kernel_size", spatial_kernel_size, odd=True)
        spatial_norm = bool_arg("spatial_norm", spatial_norm)
        self.channels = channels
        self.fc1 = nn.Conv2d(channels, rd, 1)
        self.act = create_act(act_layer)
        self.fc2 = nn.Conv2d(rd, channels, 1)
        self.spatial_conv = nn.Conv2d(2, 1, spatial_kernel_size,
                                      padding=spatial_kernel_size // 2, bias=not spatial_norm)
        self.spatial_norm = nn.BatchNorm2d(1) if spatial_norm else nn.Identity()
        self.gate = create_act(gate_layer, "gate_layer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W], refined by the channel then the spatial gate."""
        check_nchw(x, self.channels)
        pooled = torch.cat([x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)], 3)
        mc = self.fc2(self.act(self.fc1(pooled))).sum(3, keepdim=True)   # [N, C, 1, 1]
        x = x * self.gate(mc)
        desc = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # [N, 2, H, W]
        return x * self.gate(self.spatial_norm(self.spatial_conv(desc)))


register(
    "cbam", CBAM, title="Convolutional Block Attention Module",
    paper="CBAM, ECCV18, arXiv:1807.06521", family="channel", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 16, "W": 16},
)
