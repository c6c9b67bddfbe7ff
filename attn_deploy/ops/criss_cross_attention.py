"""Criss-cross attention: the op, its PyTorch reference, and its custom-op registration.

Paper: Huang, Wang, Huang, Huang, Wei, Liu, "CCNet: Criss-Cross Attention for Semantic
Segmentation", ICCV 2019, arXiv:1811.11721. Semantics (DESIGN.md): for pixel (y, x) the energies
are ``q(y, x) . k(y', x)`` over its column and ``q(y, x) . k(y, x')`` over its row; one softmax
over those H + W - 1 positions (the pixel itself counted once, through the row); the output is
the attention-weighted sum of ``value`` over the same positions. No gamma, no residual.

``torch.ops.attn_deploy.criss_cross_attention`` runs the compiled kernels when they are built
(``attn_deploy.ops.native_available()``), else :func:`criss_cross_attention_reference`; its
backward is ``torch.ops.attn_deploy.criss_cross_attention_backward`` (native, else autograd of
the reference).
"""
from __future__ import annotations

import torch
from torch import Tensor

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import CRISS_CROSS_ATTENTION, known_dims
from attn_deploy.ops._dispatch import native_extension

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_criss_cross_args(query: Tensor, key: Tensor, value: Tensor) -> None:
    """Raise AttnDeployError unless the arguments fit ``criss_cross_attention``'s contract."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise AttnDeployError(f"criss_cross_attention: {name} must be a tensor, got "
                                  f"{type(t).__name__}")
        if t.dim() != 4:
            raise AttnDeployError(f"criss_cross_attention: {name} must be 4-D [N, C, H, W], "
                                  f"got shape {list(t.shape)}")
    if query.dtype not in _FLOAT_DTYPES:
        raise AttnDeployError(f"criss_cross_attention: query must be a floating-point tensor, "
                              f"got {query.dtype}")
    for name, t in (("key", key), ("value", value)):
        if t.dtype != query.dtype or t.device != query.device:
            raise AttnDeployError(
                f"criss_cross_attention: {name} must have the dtype and device of query "
                f"({query.dtype}, {query.device}), got {t.dtype}, {t.device}")
    if list(key.shape) != list(query.shape):
        raise AttnDeployError(f"criss_cross_attention: key must have the shape of query "
                              f"{list(query.shape)} (same channels and size), got "
                              f"{list(key.shape)}")
    n, _, h, w = query.shape
    if value.shape[0] != n or value.shape[2] != h or value.shape[3] != w:
        raise AttnDeployError(f"criss_cross_attention: value must be [N, C, H, W] with N, H, W "
                              f"of query ({n}, {h}, {w}), got {list(value.shape)}")
    errors = CRISS_CROSS_ATTENTION.shape_errors(
        [known_dims(t.shape) for t in (query, key, value)], {})
    if errors:
        raise AttnDeployError(f"criss_cross_attention: {errors[0]}")


def criss_cross_attention_reference(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Pure-PyTorch criss-cross attention: query, key [N, Cq, H, W], value [N, C, H, W]
    -> [N, C, H, W].

    Batched matmuls along columns and rows; the duplicate self position of the column is masked
    with -inf from an index comparison (no ``torch.diag``), so it exports to standard ONNX with
    dynamic N, H, W. float16/bfloat16 accumulate in float32.
    """
    check_criss_cross_args(query, key, value)
    acc = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    q, k, v = query.to(acc), key.to(acc), value.to(acc)
    h = q.shape[2]
    e_col = torch.matmul(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2))   # [N, W, H, H']
    idx = torch.arange(h, device=q.device)
    self_pos = idx.unsqueeze(1) == idx.unsqueeze(0)                       # [H, H]
    e_col = e_col.masked_fill(self_pos, float("-inf")).transpose(1, 2)    # [N, H, W, H']
    e_row = torch.matmul(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))   # [N, H, W, W']
    att = torch.softmax(torch.cat([e_col, e_row], dim=-1), dim=-1)
    a_col, a_row = att[..., :h], att[..., h:]
    out_col = torch.matmul(a_col.transpose(1, 2), v.permute(0, 3, 2, 1))  # [N, W, H, C]
    out_row = torch.matmul(a_row, v.permute(0, 2, 3, 1))                  # [N, H, W, C]
    out = out_col.permute(0, 3, 2, 1) + out_row.permute(0, 3, 1, 2)
    return out.to(query.dtype)


@torch.library.custom_op("attn_deploy::criss_cross_attention", mutates_args=())
def _cca_op(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    check_criss_cross_args(query, key, value)
    ext = native_extension(query, key, value)
    if ext is None:  # contiguous like the fake result (the reference's add may keep a permute)
        return criss_cross_attention_reference(query, key, value).contiguous()
    return ext.criss_cross_attention_forward(query.contiguous(), key.contiguous(),
                                             value.contiguous())


@_cca_op.register_fake
def _(query, key, value):
    check_criss_cross_args(query, key, value)
    return value.new_empty(value.shape)


@torch.library.custom_op("attn_deploy::criss_cross_attention_backward", mutates_args=())
def _cca_backward_op(grad_out: Tensor, query: Tensor, key: Tensor,
                     value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    ext = native_extension(grad_out, query, key, value)
    if ext is None:
        # torch.func.vjp works inside a custom op (plain autograd is disabled there).
        _, vjp = torch.func.vjp(criss_cross_attention_reference, query, key, value)
        return tuple(g.contiguous() for g in vjp(grad_out.to(value.dtype)))
    gq, gk, gv = ext.criss_cross_attention_backward(grad_out.contiguous(), query.contiguous(),
                                                    key.contiguous(), value.contiguous())
    return gq, gk, gv


@_cca_backward_op.register_fake
def _(grad_out, query, key, value):
    return query.new_empty(query.shape), key.new_empty(key.shape), value.new_empty(value.shape)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_out):
    query, key, value = ctx.saved_tensors
    return tuple(torch.ops.attn_deploy.criss_cross_attention_backward(grad_out, query, key,
                                                                      value))


_cca_op.register_autograd(_backward, setup_context=_setup_context)


def criss_cross_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Criss-cross attention (module docstring): query, key [N, Cq, H, W], value [N, C, H, W]
    -> [N, C, H, W]. Differentiable; exported to ONNX as one ``attn_deploy::CrissCrossAttention``
    node."""
    check_criss_cross_args(query, key, value)
    return torch.ops.attn_deploy.criss_cross_attention(query, key, value)
