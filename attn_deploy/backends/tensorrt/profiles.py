"""Optimization profiles (min/opt/max input shapes) for an ONNX model's dynamic dims.

For a model exported from a registered block, the ranges come from the block's spec (stored in
the model's metadata by ``export_block``): per dim symbol, min = the spec's minimum (1 by
default), opt = the default size, max = the spec's maximum, else max(2 x default, default + 4
multiples); multiples are respected, and every size the validation harness uses (default and
alternate dims) lies inside. Any input's min/opt/max can be given explicitly
(``{"x": (1, 64, 32, 32)}``), which wins over the spec. Static inputs get their fixed shape.
"""
from __future__ import annotations

import json
from typing import Mapping

import onnx

from attn_deploy.errors import AttnDeployError

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input -> (min, opt, max)


def model_inputs(proto: onnx.ModelProto) -> dict[str, tuple]:
    """Graph inputs (initializers excluded): name -> dims (int, or the symbol / None)."""
    inits = {i.name for i in proto.graph.initializer}
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                          for d in v.type.tensor_type.shape.dim)
            for v in proto.graph.input if v.name not in inits}


def symbol_ranges(spec) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) per dim symbol of a BlockSpec."""
    ranges = {}
    for s in spec.symbols:
        d, m = spec.dims[s], spec.multiples.get(s, 1)
        lo = max(spec.min_dims.get(s, 1), m)
        lo = -(-lo // m) * m
        hi = spec.max_dims.get(s) or max(2 * d, d + 4 * m)
        hi = hi // m * m
        ranges[s] = (min(lo, d), d, max(hi, d))
    return ranges


SHAPES_KEY = "attn_deploy_shapes"


def shapes_metadata(spec) -> str:
    """What export_block records so that the runtime side (no torch, no registry) knows a
    block's shapes: input templates, default and alternate shapes, and per symbol
    (min, opt, max)."""
    return json.dumps({"inputs": {n: list(t) for n, t in spec.inputs.items()},
                       "default": {n: list(v) for n, v in spec.shapes(**spec.dims).items()},
                       "alternate": {n: list(v) for n, v in
                                     spec.shapes(**spec.alternate_dims()).items()},
                       "ranges": {k: list(v) for k, v in symbol_ranges(spec).items()}},
                      sort_keys=True)


def recorded_shapes(proto: onnx.ModelProto) -> dict | None:
    """The ``shapes_metadata`` record of an exported block, or None (not an attn_deploy block
    export, or one from before the record existed)."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if SHAPES_KEY not in meta:
        return None
    try:
        record = json.loads(meta[SHAPES_KEY])
        for part in ("inputs", "default", "alternate", "ranges"):
            if not isinstance(record[part], dict):
                raise ValueError(part)
    except (ValueError, KeyError, TypeError) as exc:
        raise AttnDeployError(f"unreadable {SHAPES_KEY} metadata ({exc})") from None
    return record


def _templates_and_ranges(proto: onnx.ModelProto, spec):
    """(input templates, symbol ranges) from ``spec``, else from the file's shape record, else
    from the block registry (the export side); ({}, {}) for a file that is none of these."""
    if spec is None:
        record = recorded_shapes(proto)
        if record is not None:
            return ({n: tuple(t) for n, t in record["inputs"].items()},
                    {k: tuple(v) for k, v in record["ranges"].items()})
        from attn_deploy.modules.registry import spec_from_onnx
        spec = spec_from_onnx(proto)
    if spec is None:
        return {}, {}
    return dict(spec.inputs), symbol_ranges(spec)


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
    templates, ranges = _templates_and_ranges(proto, spec)
    for name, template in templates.items():  # the spec's symbols are the export's dim names
        if name in inputs and len(template) == len(inputs[name]):
            inputs[name] = tuple(t if isinstance(t, str) else d
                                 for t, d in zip(template, inputs[name]))
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
