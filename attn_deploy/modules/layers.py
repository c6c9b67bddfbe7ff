"""Small layer choices shared by the blocks: activations and gates by name, channel rounding,
and the input checks every forward starts with."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.arg_checks import int_arg, optional_int_arg, ratio_arg

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
        try:
            return layer()
        except TypeError as exc:
            raise AttnDeployError(f"{name}: {layer.__name__}() cannot be built without "
                                  f"arguments: {exc}") from None
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
    """Bottleneck width: ``rd_channels`` if given, else ``channels * rd_ratio`` (>= 1).

    Checks all three arguments (the reduction settings of every block that has them)."""
    channels = int_arg("channels", channels)
    rd_ratio = ratio_arg("rd_ratio", rd_ratio)
    rd_channels = optional_int_arg("rd_channels", rd_channels)
    if rd_channels is not None:
        return rd_channels
    if rd_divisor > 1:
        return make_divisible(channels * rd_ratio, rd_divisor)
    # floor, as the papers' C // r (the epsilon absorbs float error in e.g. 48 * (1/3))
    return max(1, int(channels * rd_ratio + 1e-6))


# Input checks. Shape checks on plain Python ints are free at export time: the dynamo exporter
# evaluates them on the symbolic shape (every dynamic dim has a minimum of 1, so "== 0" is
# decided statically) and emits no graph nodes and no guards.

def check_nonempty(name: str, x: torch.Tensor, layout: str) -> None:
    """Raise AttnDeployError if an axis of ``x`` is 0. ``layout`` names the axes, one letter
    each ("NCHW", "NLD"). Blocks refuse empty inputs rather than return an empty result: a
    softmax over no positions, a mean over an empty map or a batch-norm of no samples has no
    value, and a refusal is the same for every block and every runtime."""
    for axis, label in enumerate(layout):
        if axis < x.dim() and x.shape[axis] == 0:
            raise AttnDeployError(f"{name}: dim {label} (axis {axis}) is 0 in shape "
                                  f"{list(x.shape)}; every dim of [{', '.join(layout)}] must "
                                  "be >= 1")


def _check_float_tensor(name: str, x: object) -> None:
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        seen = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise AttnDeployError(f"{name}: expected a floating-point torch.Tensor, got {seen}")


def check_nchw(x: torch.Tensor, channels: int, name: str = "x") -> None:
    """Raise AttnDeployError unless ``x`` is a float [N, channels, H, W] with N, H, W >= 1."""
    _check_float_tensor(name, x)
    if x.dim() != 4 or x.shape[1] != channels:
        raise AttnDeployError(f"{name}: expected [N, {channels}, H, W], got {list(x.shape)}")
    check_nonempty(name, x, "NCHW")


def check_sequence(name: str, x: torch.Tensor, dim: int) -> None:
    """Raise AttnDeployError unless ``x`` is a float [N, L, dim] with N, L >= 1."""
    _check_float_tensor(name, x)
    if x.dim() != 3 or x.shape[-1] != dim:
        raise AttnDeployError(f"{name}: expected a [N, L, {dim}] tensor, got {tuple(x.shape)}")
    check_nonempty(name, x, "NLD")
