"""A model's inputs for export: names, shape templates with dim symbols, dtypes, example sizes.

The command line gives them as ``--input NAME:SHAPE[:DTYPE]`` (``image:2x3x64x64``) and
``--dynamic NAME:AXIS=SYMBOL[,AXIS=SYMBOL...]`` (``image:0=N,2=H,3=W``); a recipe gives the
templates directly (``image = ["N", 3, "H", "W"]``) and the sizes as dims. Either way the result
is a list of :class:`~attn_deploy.shapes.InputSpec` and a dict of example sizes per symbol, the
vocabulary a block spec uses too (``attn_deploy/shapes.py``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import InputSpec, parse_dims

DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
          "int64": torch.int64, "int32": torch.int32,
          "bool": torch.bool}


def parse_dtype(text: str, where: str) -> torch.dtype:
    try:
        return DTYPES[text]
    except KeyError:
        raise AttnDeployError(f"{where}: dtype {text!r} is not one of {list(DTYPES)}") from None


def parse_input(text: str) -> tuple[str, tuple[int, ...], torch.dtype]:
    """``"image:2x3x64x64"`` or ``"ids:2x16:int64"`` -> (name, shape, dtype)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise AttnDeployError(f"--input {text!r}: expected NAME:D0xD1x...[:DTYPE], "
                              "e.g. image:2x3x64x64")
    name, shape = parts[0], parse_dims(parts[1], f"--input {text!r}")
    dtype = parse_dtype(parts[2], f"--input {text!r}") if len(parts) == 3 else torch.float32
    return name, shape, dtype


def parse_dynamic(text: str) -> tuple[str, dict[int, str]]:
    """``"image:0=N,2=H"`` -> ("image", {0: "N", 2: "H"})."""
    name, sep, rest = text.partition(":")
    if not sep or not name or not rest:
        raise AttnDeployError(f"--dynamic {text!r}: expected NAME:AXIS=SYMBOL[,AXIS=SYMBOL], "
                              "e.g. image:0=N,2=H,3=W")
    axes: dict[int, str] = {}
    for part in filter(None, rest.split(",")):
        axis, eq, symbol = part.partition("=")
        try:
            axis_int = int(axis)
        except ValueError:
            axis_int = None
        if not eq or axis_int is None or not symbol.isidentifier():
            raise AttnDeployError(f"--dynamic {text!r}: {part!r} is not AXIS=SYMBOL with an "
                                  "integer axis and a symbol name such as N, H or W")
        axes[axis_int] = symbol
    return name, axes


def inputs_from_args(inputs: Sequence[str], dynamic: Sequence[str] | None
                     ) -> tuple[list[InputSpec], dict[str, int]]:
    """The command line's --input and --dynamic -> (input specs, example size per symbol)."""
    if not inputs:
        raise AttnDeployError("--model needs at least one --input NAME:SHAPE, "
                              "e.g. --input image:2x3x64x64")
    parsed = [parse_input(t) for t in inputs]
    names = [p[0] for p in parsed]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AttnDeployError(f"--input: input(s) {dup} given more than once")
    axes_by_name: dict[str, dict[int, str]] = {}
    for text in dynamic or []:
        name, axes = parse_dynamic(text)
        if name not in names:
            raise AttnDeployError(f"--dynamic {text!r}: no input named {name!r}; inputs are "
                                  f"{names}")
        axes_by_name.setdefault(name, {}).update(axes)
    specs, dims = [], {}
    for name, shape, dtype in parsed:
        template = list(shape)
        for axis, symbol in axes_by_name.get(name, {}).items():
            if not -len(shape) <= axis < len(shape):
                raise AttnDeployError(f"--dynamic {name}:{axis}={symbol}: axis {axis} is out "
                                      f"of range for input {name!r} of shape {shape}")
            size = shape[axis]
            if symbol in dims and dims[symbol] != size:
                raise AttnDeployError(
                    f"--dynamic: symbol {symbol!r} is {dims[symbol]} on one axis and {size} on "
                    f"{name!r} axis {axis}; axes sharing a symbol must have the same example size")
            dims[symbol] = size
            template[axis] = symbol
        specs.append(InputSpec(name, tuple(template), dtype))
    return specs, dims


def inputs_from_templates(templates: Mapping[str, Sequence], dtypes: Mapping[str, str]
                          ) -> list[InputSpec]:
    """A recipe's ``[inputs]`` table -> input specs (ints and symbol names)."""
    specs = []
    for name, template in templates.items():
        if not isinstance(template, (list, tuple)) or not template:
            raise AttnDeployError(f"inputs.{name}: expected a shape list such as "
                                  f"[\"N\", 3, \"H\", \"W\"], got {template!r}")
        for d in template:
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 1) or \
                 (isinstance(d, str) and d.isidentifier())
            if not ok:
                raise AttnDeployError(f"inputs.{name}: {d!r} is neither a size >= 1 nor a "
                                      "symbol name")
        dtype = parse_dtype(dtypes.get(name, "float32"), f"dtypes.{name}")
        specs.append(InputSpec(name, tuple(template), dtype))
    return specs
