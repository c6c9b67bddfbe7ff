"""Small layer choices shared by the blocks: activations and gates by name, channel rounding."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def create_act(layer: str | type[nn.Module] | None, name: str = "act_layer") -> nn.Module:
    """An activation (or gate) module from a name, a class, or None (identity)."""
    if layer is None:
        return nn.Identity()
    if isinstance(layer, str):
        try:
            return _ACTIVATIONS[layer.lower()]()
        except KeyError:
            raise AttnDeployError(f"{name}: unknown activation {layer!r}; "
                                  f"valid: {', '.join(sorted(_ACTIVATIONS))}") from None
    if isinstance(layer, type) and issubclass(layer, nn.Module):
        return layer()
    raise AttnDeployError(f"{name}: expected a name or an nn.Module class, got {layer!r}")


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def reduced_channels(channels: int, rd_ratio: float, rd_channels: int | None,
                     rd_divisor: int = 1) -> int:
    """Bottleneck width: ``rd_channels`` if given, else ``channels * rd_ratio`` (>= 1)."""
    if channels < 1:
        raise AttnDeployError(f"channels must be >= 1, got {channels}")
    if rd_channels is not None:
        if rd_channels < 1:
            raise AttnDeployError(f"rd_channels must be >= 1, got {rd_channels}")
        return int(rd_channels)
    if not 0 < rd_ratio <= 1:
        raise AttnDeployError(f"rd_ratio must be in (0, 1], got {rd_ratio}")
    if rd_divisor > 1:
        return make_divisible(channels * rd_ratio, rd_divisor)
    # floor, as the papers' C // r (the epsilon absorbs float error in e.g. 48 * (1/3))
    return max(1, int(channels * rd_ratio + 1e-6))


def check_nchw(x: torch.Tensor, channels: int, name: str = "x") -> None:
    """Raise AttnDeployError unless ``x`` is [N, channels, H, W].

    Shape checks on plain Python ints are free at export time (the dynamo exporter evaluates
    them on the symbolic shape and emits no graph nodes)."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise AttnDeployError(f"{name}: expected [N, {channels}, H, W], got {list(x.shape)}")
