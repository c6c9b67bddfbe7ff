"""CARAFE reassembly: the op, its PyTorch reference, and its custom-op registration.

Paper: Wang, Chen, Xu, Liu, Loy, Lin, "CARAFE: Content-Aware ReAssembly of FEatures", ICCV 2019,
arXiv:1905.02188. Semantics (DESIGN.md, the same as mmcv's ``carafe``), r = (k - 1) / 2::

    out[n, c, y, x] = sum_{i, j < k} features[n, c, y // s + i - r, x // s + j - r]
                                     * masks[n, (c // (C / G)) * k * k + i * k + j, y, x]

with out-of-range features counting as 0. ``masks`` are the already normalised reassembly
kernels. ``torch.ops.attn_deploy.carafe`` runs the compiled kernels when they are built (see
``attn_deploy.ops.native_available()``), else :func:`carafe_reference`; its backward is
``torch.ops.attn_deploy.carafe_backward`` (native, else autograd of the reference).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import CARAFE, known_dims
from attn_deploy.ops._dispatch import native_extension

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_carafe_args(features: Tensor, masks: Tensor, kernel_size: int, group_size: int,
                      scale_factor: int) -> None:
    """Raise AttnDeployError unless the arguments fit ``carafe``'s contract."""
    errors = CARAFE.attribute_errors({"kernel_size": kernel_size, "group_size": group_size,
                                      "scale_factor": scale_factor})
    if errors:
        raise AttnDeployError(f"carafe: {errors[0]}")
    for name, t in (("features", features), ("masks", masks)):
        if not isinstance(t, Tensor):
            raise AttnDeployError(f"carafe: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise AttnDeployError(f"carafe: {name} must be 4-D, got shape {list(t.shape)}")
    if features.dtype not in _FLOAT_DTYPES:
        raise AttnDeployError(f"carafe: features must be a floating-point tensor, got "
                              f"{features.dtype}")
    if masks.dtype != features.dtype or masks.device != features.device:
        raise AttnDeployError(f"carafe: masks must have the dtype and device of features "
                              f"({features.dtype}, {features.device}), got {masks.dtype}, "
                              f"{masks.device}")
    n, c, h, w = features.shape
    if c % group_size != 0:
        raise AttnDeployError(f"carafe: group_size must divide the {c} feature channels, "
                              f"got group_size={group_size}")
    expected = [n, group_size * kernel_size ** 2, scale_factor * h, scale_factor * w]
    if list(masks.shape) != expected:
        raise AttnDeployError(
            f"carafe: masks must be [N, group_size*kernel_size^2, scale_factor*H, "
            f"scale_factor*W] = {expected} for features {list(features.shape)}, got "
            f"{list(masks.shape)}")
    errors = CARAFE.shape_errors([known_dims(features.shape), known_dims(masks.shape)],
                                 {"scale_factor": scale_factor})
    if errors:
        raise AttnDeployError(f"carafe: {errors[0]}")


def carafe_reference(features: Tensor, masks: Tensor, kernel_size: int, group_size: int,
                     scale_factor: int) -> Tensor:
    """Pure-PyTorch CARAFE: features [N, C, H, W], masks [N, G*k*k, sH, sW] -> [N, C, sH, sW].

    Each of the k*k taps is a shifted low-resolution slice broadcast over the s x s output
    pixels it feeds: no unfolded (k*k times larger) tensor, no ``F.unfold``, and only ops that
    export to standard ONNX with dynamic N, H, W. float16/bfloat16 accumulate in float32.
    """
    check_carafe_args(features, masks, kernel_size, group_size, scale_factor)
    k, g, s, r = kernel_size, group_size, scale_factor, (kernel_size - 1) // 2
    n, c, h, w = features.shape
    acc = torch.float32 if features.dtype in (torch.float16, torch.bfloat16) else features.dtype
    # [N, G, C/G, 1, H+2r, 1, W+2r, 1]: taps broadcast over the (sy, sx) sub-pixel axes.
    x = F.pad(features.to(acc), (r, r, r, r)).reshape(n, g, c // g, 1, h + 2 * r, 1, w + 2 * r, 1)
    m = masks.to(acc).reshape(n, g, k * k, 1, h, s, w, s)
    out = None
    for i in range(k):
        for j in range(k):
            tap = x[:, :, :, :, i:i + h, :, j:j + w] * m[:, :, i * k + j:i * k + j + 1]
            out = tap if out is None else out + tap
    return out.reshape(n, c, h * s, w * s).to(features.dtype)


@torch.library.custom_op("attn_deploy::carafe", mutates_args=())
def _carafe_op(features: Tensor, masks: Tensor, kernel_size: int, group_size: int,
               scale_factor: int) -> Tensor:
    check_carafe_args(features, masks, kernel_size, group_size, scale_factor)
    ext = native_extension(features, masks)
    if ext is None:
        return carafe_reference(features, masks, kernel_size, group_size, scale_factor)
    return ext.carafe_forward(features.contiguous(), masks.contiguous(), kernel_size,
                              group_size, scale_factor)


@_carafe_op.register_fake
def _(features, masks, kernel_size, group_size, scale_factor):
    check_carafe_args(features, masks, kernel_size, group_size, scale_factor)
    n, c, h, w = features.shape
    return features.new_empty((n, c, h * scale_factor, w * scale_factor))


@torch.library.custom_op("attn_deploy::carafe_backward", mutates_args=())
def _carafe_backward_op(grad_out: Tensor, features: Tensor, masks: Tensor, kernel_size: int,
                        group_size: int, scale_factor: int) -> tuple[Tensor, Tensor]:
    ext = native_extension(grad_out, features, masks)
    if ext is None:
        # torch.func.vjp works inside a custom op (plain autograd is disabled there).
        _, vjp = torch.func.vjp(
            lambda f, m: carafe_reference(f, m, kernel_size, group_size, scale_factor),
            features, masks)
        return tuple(g.contiguous() for g in vjp(grad_out.to(features.dtype)))
    grad_f, grad_m = ext.carafe_backward(grad_out.contiguous(), features.contiguous(),
                                         masks.contiguous(), kernel_size, group_size,
                                         scale_factor)
    return grad_f, grad_m


@_carafe_backward_op.register_fake
def _(grad_out, features, masks, kernel_size, group_size, scale_factor):
    return features.new_empty(features.shape), masks.new_empty(masks.shape)


def _setup_context(ctx, inputs, output):
    features, masks, ctx.kernel_size, ctx.group_size, ctx.scale_factor = inputs
    ctx.save_for_backward(features, masks)


def _backward(ctx, grad_out):
    features, masks = ctx.saved_tensors
    grad_f, grad_m = torch.ops.attn_deploy.carafe_backward(
        grad_out, features, masks, ctx.kernel_size, ctx.group_size, ctx.scale_factor)
    return grad_f, grad_m, None, None, None


_carafe_op.register_autograd(_backward, setup_context=_setup_context)


def carafe(features: Tensor, masks: Tensor, kernel_size: int, group_size: int,
           scale_factor: int) -> Tensor:
    """CARAFE reassembly (module docstring): features [N, C, H, W], masks [N, G*k*k, sH, sW]
    -> [N, C, sH, sW]. Differentiable; exported to ONNX as one ``attn_deploy::CARAFE`` node."""
    check_carafe_args(features, masks, kernel_size, group_size, scale_factor)
    return torch.ops.attn_deploy.carafe(features, masks, int(kernel_size), int(group_size),
                                        int(scale_factor))
