"""The run at a second shape that every dynamic export must pass before it is written.

A file can be symbolic in every declared dim and still be right only at the example size (a
frozen branch, a pooling kernel sized for the example, a reshape that hard-codes a size). So
after the export, the new model runs on ONNX Runtime (CPU) at sizes that differ from the
example in every dynamic dim, with a different parity (of the size, or of size / multiple) and a
different aspect ratio between every two dims, and its outputs are compared with PyTorch eager
on the same inputs. An error or a mismatch refuses the export.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from attn_deploy.errors import AttnDeployError
# the second shape is the shape vocabulary's alternate dims (other parity, other aspect)
from attn_deploy.shapes import alternate_dims as second_dims  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # imported where used: reading this module needs no torch
    import onnx
    import torch
    from torch import nn

_SEED = 20241


def second_shape_inputs(example_inputs: Sequence[torch.Tensor], input_names: Sequence[str],
                        dynamic_axes: Mapping[str, Mapping[int, str]],
                        dims: Mapping[str, int], seed: int = _SEED) -> tuple[torch.Tensor, ...]:
    """Inputs like ``example_inputs`` with every dynamic axis resized to ``dims``: fresh
    normals for float inputs; for integer and boolean inputs, values drawn from the example's
    own (token ids stay in the vocabulary, masks keep their density)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for name, x in zip(input_names, example_inputs):
        shape = list(x.shape)
        for axis, sym in dynamic_axes.get(name, {}).items():
            shape[axis] = dims[sym]
        if x.is_floating_point():
            y = torch.randn(shape, generator=g).to(x.dtype)
        else:
            pool = x.reshape(-1).cpu()
            y = pool[torch.randint(0, max(pool.numel(), 1), shape, generator=g)] \
                if pool.numel() else torch.zeros(shape, dtype=x.dtype)
        out.append(y.to(x.device))
    return tuple(out)


def example_dims(example_inputs: Sequence[torch.Tensor], input_names: Sequence[str],
                 dynamic_axes: Mapping[str, Mapping[int, str]]) -> dict[str, int]:
    """Size of every dim symbol in the example inputs."""
    dims: dict[str, int] = {}
    for name, x in zip(input_names, example_inputs):
        for axis, sym in dynamic_axes.get(name, {}).items():
            dims.setdefault(sym, int(x.shape[axis]))
    return dims


def eager_runs(model: nn.Module, example_inputs, input_names, dynamic_axes, dims):
    """runs_at(sizes) for the shape-guard check: does ``model`` run in eager with the example's
    inputs resized to ``sizes`` (the other symbols at the example's)?"""
    import torch

    def runs_at(sizes: dict[str, int]) -> bool:
        inputs = second_shape_inputs(example_inputs, input_names, dynamic_axes,
                                     {**dims, **sizes})
        was_training = model.training
        try:
            with torch.no_grad():
                model.eval()(*inputs)
            return True
        except Exception:  # user code: any failure means "does not run there"
            return False
        finally:
            model.train(was_training)
    return runs_at


def check_second_shape(model: nn.Module, onnx_path: Path, input_names: Sequence[str],
                       output_names: Sequence[str], inputs: Sequence[torch.Tensor],
                       rtol: float | None = None, runnable: onnx.ModelProto | None = None
                       ) -> float:
    """Run the ONNX file at ``inputs`` on ONNX Runtime CPU and ``model`` in eager; raise
    AttnDeployError on an error or a mismatch. Returns the seconds it took. ``runnable``: a
    model to run instead of the file (the default flavor of a tensorrt-flavor export, whose
    plugin nodes ONNX Runtime cannot run); it is written beside the file and removed.

    Non-finite or all-zero eager outputs cannot judge the file; they are left to validation
    (which fails them), not refused here."""
    was_training = model.training
    path = onnx_path if runnable is None else onnx_path.with_name(onnx_path.name + ".ort.onnx")
    try:
        if runnable is not None:
            path.write_bytes(runnable.SerializeToString())
        return _compare_at(model.eval(), path, input_names, output_names, inputs, rtol)
    finally:
        model.train(was_training)
        if runnable is not None:
            path.unlink(missing_ok=True)


def _compare_at(model, onnx_path, input_names, output_names, inputs, rtol) -> float:
    import torch

    from attn_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from attn_deploy.harness.compare import compare
    from attn_deploy.shapes import format_shapes

    start = time.perf_counter()
    feed = {n: x.detach().cpu().numpy() for n, x in zip(input_names, inputs)}
    label = format_shapes({n: a.shape for n, a in feed.items()})
    try:
        with torch.no_grad():
            ref = model(*inputs)
    except Exception as exc:  # user code: any type
        raise AttnDeployError(
            f"PyTorch itself fails at the second shape {label} used to check the export "
            f"({type(exc).__name__}: {str(exc)[:300]}); declare the sizes the model takes "
            "(multiples, min/max dims)") from exc
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    reference = {n: t.detach().float().cpu().numpy() if t.is_floating_point()
                 else t.detach().cpu().numpy() for n, t in zip(output_names, ref)}
    half = any(x.dtype in (torch.float16, torch.bfloat16) for x in inputs)
    try:
        with OnnxRuntimeRunner(onnx_path, "cpu", spinning=False) as runner:
            got = runner.infer(feed)
    except Exception as exc:  # ORT raises its own types; the message is what the user needs
        raise AttnDeployError(
            f"the exported model fails on ONNX Runtime at a second shape {label}, where "
            f"PyTorch runs: {type(exc).__name__}: {str(exc)[:600]}") from exc
    got = {n: a.astype(np.float32) if a.dtype == np.float16 else a for n, a in got.items()}
    cmp = compare(got, reference, "fp16" if half else "fp32", rtol, allow_nonfinite=True)
    if not cmp and not cmp.degenerate:
        raise AttnDeployError(
            f"the exported model gives different numbers from PyTorch at a second shape "
            f"{label}:\n{cmp}")
    return time.perf_counter() - start
