"""Optimization profiles (min/opt/max input shapes) for an ONNX model's dynamic dims.

For a model exported from a registered block, the ranges come from the sizes the file records
(:mod:`attn_deploy.shape_record`; for older files, the block's spec): per dim symbol, min = the
spec's minimum (1 by default), opt = the default size, max = the spec's maximum, else
max(2 x default, default + 4 multiples); multiples are respected, and every size the validation
harness uses (default and alternate dims) lies inside. Which axes are dynamic is what the graph
says. Any input's min/opt/max can be given explicitly (``{"x": (1, 64, 32, 32)}``), which wins
over the record. Static inputs get their fixed shape.
"""
from __future__ import annotations

from typing import Mapping

import onnx

from attn_deploy.errors import AttnDeployError
from attn_deploy.shape_record import ShapeRecord, block_shape_record

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


def model_inputs(proto: onnx.ModelProto) -> dict[str, tuple]:
    """Graph inputs (initializers excluded): name -> dims (int, or the symbol / None)."""
    inits = {i.name for i in proto.graph.initializer}
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                          for d in v.type.tensor_type.shape.dim)
            for v in proto.graph.input if v.name not in inits}


def symbol_ranges(spec) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) per dim symbol of a BlockSpec or a file's ShapeRecord."""
    ranges = {}
    for s in spec.symbols:
        d, m = spec.dims[s], spec.multiples.get(s, 1)
        lo = max(spec.min_dims.get(s, 1), m)
        lo = -(-lo // m) * m
        hi = spec.max_dims.get(s) or max(2 * d, d + 4 * m)
        hi = hi // m * m
        ranges[s] = (min(lo, d), d, max(hi, d))
    return ranges


def profile_for_model(proto: onnx.ModelProto, *, min_shapes: Mapping[str, Shape] | None = None,
                      opt_shapes: Mapping[str, Shape] | None = None,
                      max_shapes: Mapping[str, Shape] | None = None, spec=None) -> Profile:
    """One optimization profile covering the model's inputs (see the module docstring)."""
    inputs = model_inputs(proto)
    given = {"min": dict(min_shapes or {}), "opt": dict(opt_shapes or {}),
             "max": dict(max_shapes or {})}
    for kind, shapes in given.items():
        unknown = set(shapes) - set(inputs)
        if unknown:
            raise AttnDeployError(f"--{kind} names {sorted(unknown)}, which are not inputs of "
                                  f"the model; inputs: {list(inputs)}")
    # the graph's dim names are the symbols (a --static export has none); the sizes come from
    # the given spec, else from the file (attn_deploy.shape_record)
    record = ShapeRecord.of_spec(spec) if spec is not None else block_shape_record(proto)
    ranges = {} if record is None else symbol_ranges(record)
    profile: Profile = {}
    for name, dims in inputs.items():
        shapes = []
        for k, kind in enumerate(("min", "opt", "max")):
            if name in given[kind]:
                shapes.append(given[kind][name])
                continue
            shape = []
            for axis, d in enumerate(dims):
                if isinstance(d, int) and d > 0:
                    shape.append(d)
                elif isinstance(d, str) and d in ranges:
                    shape.append(ranges[d][k])
                else:
                    raise AttnDeployError(
                        f"input {name!r} axis {axis} is dynamic ({d or '?'}) and no {kind} shape "
                        f"was given; pass --min/--opt/--max {name}:<dims> (dims of {name}: "
                        f"{['?' if not isinstance(x, int) else x for x in dims]})")
            shapes.append(tuple(shape))
        _check_profile(name, dims, *shapes)
        profile[name] = (shapes[0], shapes[1], shapes[2])
    return profile


def _check_profile(name: str, dims: tuple, lo: Shape, opt: Shape, hi: Shape) -> None:
    for kind, shape in (("min", lo), ("opt", opt), ("max", hi)):
        if len(shape) != len(dims):
            raise AttnDeployError(f"{kind} shape of {name!r}: expected rank {len(dims)}, got "
                                  f"{shape}")
        for axis, (want, got) in enumerate(zip(dims, shape)):
            if isinstance(want, int) and want > 0 and want != got:
                raise AttnDeployError(f"{kind} shape of {name!r}: axis {axis} is fixed at {want} "
                                      f"in the model, got {got}")
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
        raise AttnDeployError(f"profile of {name!r}: need min <= opt <= max per axis, got "
                              f"min {lo}, opt {opt}, max {hi}")
    if any(a < 0 for a in lo):
        raise AttnDeployError(f"profile of {name!r}: negative size in min {lo}")


def describe_profile(profile: Profile) -> str:
    return "; ".join(f"{n}: min {'x'.join(map(str, a))} opt {'x'.join(map(str, b))} "
                     f"max {'x'.join(map(str, c))}" for n, (a, b, c) in profile.items())
