"""Small models that break a verdict: a size-dependent branch that export freezes (as in
mmdet's FPN_CARAFE), a model whose outputs are all zeros, a plain conv net for checkpoints."""
import torch
import torch.nn.functional as F
from torch import nn


class FrozenBranch(nn.Module):
    """x [N, C, H, W] -> x + up, where up is x max-pooled (ceil mode) and upsampled back: one
    row/column too many for odd H/W, cut off only then (FPN_CARAFE's ``if`` on sizes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        up = F.interpolate(F.max_pool2d(x, 2, 2, ceil_mode=True), scale_factor=2)
        if up.shape[2] != x.shape[2]:  # the frozen branch
            up = up[:, :, :h, :w]
        return x + up


class LimitedBranch(nn.Module):
    """A branch on a size threshold: the export keeps one side only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] > 16:  # the frozen branch
            return x * 2
        return x


class SquareBranch(nn.Module):
    """A branch on the aspect: square inputs take the other path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] == x.shape[3]:  # the frozen branch
            return x.transpose(2, 3)
        return x + 1


class ZeroOutput(nn.Module):
    """[N, 4, H, W] -> zeros: every runtime agrees, and the agreement proves nothing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SmallConv(nn.Module):
    """[N, 4, H, W] -> [N, 4, H, W]: a conv and a ReLU, for checkpoint tests."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def frozen_branch() -> FrozenBranch:
    return FrozenBranch().eval()


def zero_output() -> ZeroOutput:
    return ZeroOutput().eval()


def small_conv() -> SmallConv:
    torch.manual_seed(0)
    return SmallConv().eval()
