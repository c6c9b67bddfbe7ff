"""Export any model with named inputs and dynamic axes, then validate the file against the
PyTorch model at two or more shapes (fresh random inputs per shape, from the same file).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from attn_deploy.deploy.input_args import InputSpec, check_dims
from attn_deploy.errors import AttnDeployError


def example_tensors(inputs: Sequence[InputSpec], dims: Mapping[str, int],
                    seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs of the given sizes: normals for floats, 0/1 for ints and bools."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for spec in inputs:
        shape = spec.shape(dims)
        if spec.dtype.is_floating_point:
            out.append(torch.randn(shape, generator=g).to(spec.dtype))
        else:
            out.append(torch.randint(0, 2, shape, generator=g).to(spec.dtype))
    return tuple(out)


def output_names_for(model: nn.Module, example: Sequence[torch.Tensor],
                     names: Sequence[str] | None) -> list[str]:
    """Names for the model's outputs: ``names`` if given (checked against the count), else
    "output" for one tensor and "output_0", "output_1", ... for a tuple."""
    with torch.no_grad():
        out = model(*example)
    if isinstance(out, torch.Tensor):
        count = 1
    elif isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
        count = len(out)
    else:
        raise AttnDeployError(f"{type(model).__name__}: forward must return a tensor or a "
                              f"tuple of tensors to be exported, got {type(out).__name__}")
    if names:
        if len(names) != count:
            raise AttnDeployError(f"output names {list(names)}: the model returns {count} "
                                  f"output(s)")
        return list(names)
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def export_model(model: nn.Module, path: str | Path, inputs: Sequence[InputSpec],
                 dims: Mapping[str, int], *, output_names: Sequence[str] | None = None,
                 opset: int | None = None, flavor: str = "default",
                 multiples: Mapping[str, int] | None = None,
                 min_dims: Mapping[str, int] | None = None,
                 max_dims: Mapping[str, int] | None = None,
                 metadata: Mapping[str, str] | None = None) -> tuple[Path, list[str]]:
    """Export ``model`` with ``inputs`` at example sizes ``dims``; every symbol is a dynamic
    axis. Returns (path, output names)."""
    from attn_deploy.export import export_onnx

    for s, d in dims.items():
        if d < 2:
            raise AttnDeployError(f"example size {s} = {d}: use sizes >= 2 for dynamic axes "
                                  "(the exporter specialises a size of 1 and pins the axis)")
    dims = check_dims(inputs, dims, "example sizes", multiples)
    example = example_tensors(inputs, dims)
    model = model.eval()
    names = output_names_for(model, example, output_names)
    path = export_onnx(model, example, path,
                       input_names=[s.name for s in inputs], output_names=names,
                       dynamic_axes={s.name: s.dynamic_axes() for s in inputs
                                     if s.dynamic_axes()},
                       opset=opset, flavor=flavor, multiples=multiples, min_dims=min_dims,
                       max_dims=max_dims, metadata=metadata)
    return path, names


def validate_model(model: nn.Module, path: str | Path, inputs: Sequence[InputSpec],
                   output_names: Sequence[str], shapes: Sequence[Mapping[str, int]], *,
                   runtimes: Iterable[str] | None = None, precision: str = "fp32",
                   rtol: float | None = None, progress=None, seed: int = 0):
    """Run the ONNX file on every runtime in ``runtimes`` at each dims in ``shapes`` and compare
    with ``model`` in PyTorch eager fp32. Returns a :class:`attn_deploy.harness.Validation`."""
    from attn_deploy.backends import TorchRunner
    from attn_deploy.harness.shapes import format_shapes
    from attn_deploy.harness.validate import (Validation, run_runtimes, check_runtimes,
                                              graph_summary)

    if len(shapes) < 1:
        raise AttnDeployError("validation needs at least one set of sizes")
    runtimes = check_runtimes(runtimes)
    path = Path(path)
    v = Validation(path.name, str(path), export_ok=True)
    v.node_count, v.custom_nodes = graph_summary(path)
    reference = TorchRunner(model, {s.name: (s.dtype, s.template) for s in inputs},
                            output_names)
    cases = []
    start = time.perf_counter()
    with reference:
        for i, dims in enumerate(shapes):
            dims = check_dims(inputs, dims, f"validation sizes {dict(dims)}")
            tensors = example_tensors(inputs, dims, seed=seed + 101 + i)
            feed = {s.name: t.numpy() for s, t in zip(inputs, tensors)}
            cases.append((format_shapes({n: a.shape for n, a in feed.items()}), feed,
                          reference.infer(feed)))
    if progress:
        progress(f"{path.name}: PyTorch reference at {len(cases)} shape(s) "
                 f"({time.perf_counter() - start:.1f} s)")
    run_runtimes(v, path, runtimes, cases, precision, rtol, progress)
    return v

