"""A model's inputs for export: names, shape templates with dim symbols, dtypes, example sizes.

The command line gives them as ``--input NAME:SHAPE[:DTYPE]`` (``image:2x3x64x64``) and
``--dynamic NAME:AXIS=SYMBOL[,AXIS=SYMBOL...]`` (``image:0=N,2=H,3=W``); a recipe gives the
templates directly (``image = ["N", 3, "H", "W"]``) and the sizes as dims. Either way the result
is a list of :class:`InputSpec` and a dict of example sizes per symbol. Inputs that share a
symbol share the size, as in a block spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import torch

from attn_deploy.errors import AttnDeployError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
          "int64": torch.int64, "int32": torch.int32,
          "bool": torch.bool}


@dataclass(frozen=True)
class InputSpec:
    """One model input: ``template`` holds ints (fixed sizes) and dim symbols (dynamic axes)."""

    name: str
    template: tuple
    dtype: torch.dtype = torch.float32

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.template) if isinstance(d, str)}

    def shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] if isinstance(d, str) else d for d in self.template)


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
    name, dims = parts[0], parts[1]
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        raise AttnDeployError(f"--input {text!r}: sizes must be integers separated by 'x', "
                              f"got {dims!r}") from None
    if any(d < 1 for d in shape):
        raise AttnDeployError(f"--input {text!r}: sizes must be >= 1, got {shape}")
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


def parse_symbol_ints(items: Iterable[str] | None, option: str) -> dict[str, int]:
    """``["H=32,W=32"]`` -> {"H": 32, "W": 32} (for --multiple)."""
    out: dict[str, int] = {}
    for item in items or []:
        for part in filter(None, item.split(",")):
            sym, eq, val = part.partition("=")
            if not eq or not sym.strip().isidentifier() or not val.strip().isdigit() \
                    or int(val) < 1:
                raise AttnDeployError(f"{option} {part!r}: expected SYMBOL=INT with INT >= 1, "
                                      "e.g. H=32")
            out[sym.strip()] = int(val)
    return out


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


def symbols(inputs: Sequence[InputSpec]) -> list[str]:
    seen: dict[str, None] = {}
    for spec in inputs:
        for d in spec.template:
            if isinstance(d, str):
                seen.setdefault(d)
    return list(seen)


def check_dims(inputs: Sequence[InputSpec], dims: Mapping[str, int], where: str,
               multiples: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every symbol sized, sizes >= 1 and multiples respected; unknown symbols refused."""
    syms, multiples = symbols(inputs), multiples or {}
    unknown = sorted(set(dims) - set(syms))
    missing = [s for s in syms if s not in dims]
    if unknown or missing:
        raise AttnDeployError(f"{where}: sizes must be given for exactly the symbols {syms}; "
                              f"missing {missing}, unknown {unknown}")
    for s in syms:
        v, m = dims[s], multiples.get(s, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % m:
            need = "an integer >= 1" + (f" and a multiple of {m}" if m > 1 else "")
            raise AttnDeployError(f"{where}: {s} must be {need}, got {v!r}")
    return {s: int(dims[s]) for s in syms}


def alternate_dims(dims: Mapping[str, int], multiples: Mapping[str, int] | None = None,
                   min_dims: Mapping[str, int] | None = None,
                   max_dims: Mapping[str, int] | None = None) -> dict[str, int]:
    """A second size for every symbol (the same rule as a block spec's alternate dims): d + 3
    (d + m with a multiple m), else smaller; never 0 or 1, within the bounds."""
    multiples, min_dims, max_dims = multiples or {}, min_dims or {}, max_dims or {}
    alt = {}
    for s, d in dims.items():
        m = multiples.get(s, 1)
        lo, hi = max(min_dims.get(s, 1), 2), max_dims.get(s)
        candidates = [d + 3 * m, d + m, d - m, d - 3 * m] if m == 1 else [d + m, d - m]
        ok = [c for c in candidates if c >= lo and (hi is None or c <= hi) and c != d]
        if not ok:
            raise AttnDeployError(f"no second size for {s} (example {d}, multiple {m}, bounds "
                                  f"{lo}..{hi}); give the validation shapes explicitly")
        alt[s] = ok[0]
    return alt
