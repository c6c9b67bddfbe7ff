"""Dynamic Graph Message Passing (DGMN).

Paper: Zhang, Xu, Arnab, Torr, "Dynamic Graph Message Passing Networks", CVPR 2020,
arXiv:1909.05235. Authors' code: https://github.com/lzrobots/dgmn
(``maskrcnn_benchmark/layers/dynamic_weight.py``, ``ReDynamicWeightsCat33`` with
``deform="deformatt"``, the variant their configs use).

Every pixel is a node. For each dilation d in ``dilations`` (one sampling set each), node i
starts from the K = k*k nodes of a k x k grid dilated by d around it and moves each by an offset
predicted from its neighbourhood (a k x k conv dilated by d): the dynamic random walk. The K
nodes h_j are read by bilinear sampling. A deformable k x k conv over those same sampled nodes
then predicts, per node pair (i, j):
  - the filter weights W_ij, one per channel group (``weight_groups`` G; G = C is channel-wise),
  - the affinity A_ij, normalised with a softmax over the K nodes.
The message of a set is ``m_i[c] = sum_j A_ij W_ij[group(c)] h_j[c]`` and the update is
``y = x + sum_s gamma_s m^s`` with learned scalars gamma_s (initialised to 1, as in the code).

The deformable conv is computed exactly as a 1x1 conv over the sampled neighbourhood
([N, C*K, H, W], channel c*K + j), whose weight is the k x k conv weight [O, C, k, k] flattened;
with all offsets 0 it equals the plain dilated conv. Choices: default ``dilations=(1, 4)`` for
small maps (the authors use (1, 4, 8, 12) on ResNet stage 5 at stride 32 for COCO); one
message-passing step, as each of the authors' blocks does; PyTorch's default conv init, so the
offsets are not zero at init (their code does not zero them either).

Export: all S*K sampling grids go to one ONNX ``GridSample`` (opset 16+) with mode bilinear,
padding_mode zeros, align_corners 0 - all within TensorRT's GridSample support (bilinear /
nearest / bicubic, zeros / border / reflection, align_corners 0 or 1). The base grid comes from
``Range`` on the runtime H and W (no ``linspace``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attn_deploy.modules._local_windows import window_offsets
from attn_deploy.modules.arg_checks import divisor_arg, int_arg, int_tuple_arg
from attn_deploy.modules.layers import check_nchw
from attn_deploy.modules.registry import register


class DynamicGraphMessage(nn.Module):
    def __init__(self, channels: int = 32, kernel_size: int = 3,
                 dilations: tuple[int, ...] = (1, 4), weight_groups: int = 4):
        super().__init__()
        channels = int_arg("channels", channels)
        weight_groups = divisor_arg("weight_groups", int_arg("weight_groups", weight_groups),
                                    "channels", channels)
        kernel_size = int_arg("kernel_size", kernel_size, odd=True)
        dilations = int_tuple_arg("dilations", dilations)
        k2 = kernel_size ** 2
        self.channels, self.nodes, self.groups = channels, k2, weight_groups
        self.offset_convs = nn.ModuleList(
            nn.Conv2d(channels, 2 * k2, kernel_size, padding=int(d) * (kernel_size // 2),
                      dilation=int(d), bias=False) for d in dilations)
        # deformable k x k conv as a 1x1 conv on the sampled nodes -> G*K weights + K affinities
        self.kernel_convs = nn.ModuleList(
            nn.Conv2d(channels * k2, (weight_groups + 1) * k2, 1, bias=False) for _ in dilations)
        self.gammas = nn.Parameter(torch.ones(len(dilations)))
        grid = torch.cat([window_offsets(kernel_size, int(d)) for d in dilations])
        self.register_buffer("base_offsets", grid.reshape(1, -1, 2, 1, 1), persistent=False)

    def sampling_grid(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """offsets [N, S*K, 2, H, W] (dy, dx) in pixels -> GridSample grid [N, S*K*H, W, 2]."""
        n, _, h, w = x.shape
        pos = offsets + self.base_offsets
        ys = torch.arange(h, device=x.device, dtype=x.dtype)[:, None] + pos[:, :, 0]
        xs = torch.arange(w, device=x.device, dtype=x.dtype)[None, :] + pos[:, :, 1]
        # pixel centre -> [-1, 1] for align_corners=False
        grid = torch.stack([(2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1], -1)
        return grid.reshape(n, -1, w, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, H, W]."""
        check_nchw(x, self.channels)
        n, c, h, w = x.shape
        k, g, s = self.nodes, self.groups, len(self.offset_convs)
        offsets = torch.cat([conv(x) for conv in self.offset_convs], 1).reshape(n, s * k, 2, h, w)
        sampled = F.grid_sample(x, self.sampling_grid(x, offsets), mode="bilinear",
                                padding_mode="zeros", align_corners=False)
        sampled = sampled.reshape(n, c, s, k, h, w)
        out = x
        for i, conv in enumerate(self.kernel_convs):
            nodes = sampled[:, :, i]                                         # [N, C, K, H, W]
            pred = conv(nodes.reshape(n, c * k, h, w))                       # [N, (G+1)K, H, W]
            affinity = pred[:, g * k:].softmax(1)                            # [N, K, H, W]
            edge = pred[:, :g * k].reshape(n, g, 1, k, h, w) * affinity[:, None, None]
            message = (edge * nodes.reshape(n, g, c // g, k, h, w)).sum(3)   # [N, G, C/G, H, W]
            out = out + self.gammas[i] * message.reshape(n, c, h, w)
        return out


register(
    "dgmn", DynamicGraphMessage, title="Dynamic Graph Message Passing",
    paper="Dynamic Graph Message Passing Networks, CVPR20, arXiv:1909.05235",
    family="spatial", export_path="std",
    inputs=lambda c: {"x": ("N", c["channels"], "H", "W")}, outputs=("y",),
    dims={"N": 2, "H": 12, "W": 12},
)
