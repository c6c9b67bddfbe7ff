"""The shape vocabulary every layer shares: inputs, dim symbols and their sizes, and the two
command-line forms, trtexec's ``NAME:D0xD1x...`` and ``SYMBOL=INT``.

An input is a name, a dtype and a shape template whose entries are ints (fixed sizes) or dim
symbols ("N", "H", "W", "L", ...); every symbol is a dynamic axis of the exported model, and
inputs that share a symbol share the size. A block spec (``attn_deploy.modules.registry``), a
user model's ``--input``/``--dynamic`` arguments and a recipe's ``[inputs]`` all come down to a
list of :class:`InputSpec` and a size per symbol.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from attn_deploy.errors import AttnDeployError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class InputSpec:
    """One model input: ``template`` holds ints (fixed sizes) and dim symbols (dynamic axes);
    ``dtype`` a torch dtype, float32 when not given."""

    name: str
    template: tuple
    dtype: torch.dtype | None = None

    def __post_init__(self):
        if self.dtype is None:  # torch only where an input spec is made: the runtime side
            import torch        # (shape arguments, no export) must run without it

            object.__setattr__(self, "dtype", torch.float32)

    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.template) if isinstance(d, str)}

    def shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(dims[d] if isinstance(d, str) else d for d in self.template)

    def describe(self) -> str:
        return "(" + ", ".join(str(d) for d in self.template) + ")"


def symbols(inputs: Sequence[InputSpec]) -> tuple[str, ...]:
    """Dim symbols in order of first appearance across the inputs."""
    seen: dict[str, None] = {}
    for spec in inputs:
        for d in spec.template:
            if isinstance(d, str):
                seen.setdefault(d)
    return tuple(seen)


def check_dims(inputs: Sequence[InputSpec], dims: Mapping[str, int], where: str,
               multiples: Mapping[str, int] | None = None,
               min_dims: Mapping[str, int] | None = None,
               max_dims: Mapping[str, int] | None = None) -> dict[str, int]:
    """Sizes for exactly the inputs' symbols, each an integer within [min (default 1), max] and
    a multiple where one is asked; returns them as ints in symbol order."""
    syms = symbols(inputs)
    multiples, min_dims, max_dims = multiples or {}, min_dims or {}, max_dims or {}
    unknown = sorted(set(dims) - set(syms))
    missing = [s for s in syms if s not in dims]
    if unknown or missing:
        raise AttnDeployError(f"{where}: sizes must be given for exactly the symbols "
                              f"{list(syms)}; missing {missing}, unknown {unknown}")
    for s in syms:
        v, m = dims[s], multiples.get(s, 1)
        lo, hi = min_dims.get(s, 1), max_dims.get(s)
        need = f">= {lo}" + ("" if hi is None else f" and <= {hi}") \
            + (f" and a multiple of {m}" if m > 1 else "")
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise AttnDeployError(f"{where}: dim {s} must be an integer {need}, got {v!r}")
        if v < lo or (hi is not None and v > hi) or v % m:
            raise AttnDeployError(f"{where}: dim {s} must be {need}, got {v!r}")
    return {s: int(dims[s]) for s in syms}


def alternate_dims(dims: Mapping[str, int], multiples: Mapping[str, int] | None = None,
                min_dims: Mapping[str, int] | None = None,
                max_dims: Mapping[str, int] | None = None) -> dict[str, int]:
    """A second size for every symbol, to prove an exported model is really dynamic (and
    the size the export itself is run at): within the bounds, a multiple of its multiple, never
    0 or 1 (the exporter may specialise those), ``size / multiple`` of the other parity, and no
    two symbols keeping their ratio (H x W changes aspect as well as size: a branch frozen on
    ``H == W`` or on an even size shows). Falls back to a same-aspect or same-parity size only
    where the bounds leave nothing else."""
    multiples, min_dims, max_dims = multiples or {}, min_dims or {}, max_dims or {}
    out: dict[str, int] = {}
    for s, d in dims.items():
        m = multiples.get(s, 1)
        lo, hi = max(min_dims.get(s, 1), 2), max_dims.get(s)
        k = d // m
        steps = [1, 3, -1, 5, -3, 7, -5, 9, 2, -2, 4, -4]   # odd steps first: parity flips
        sizes = [m * (k + i) for i in steps]
        sizes = [c for c in sizes if c >= lo and (hi is None or c <= hi) and c != d]
        if not sizes:
            raise AttnDeployError(f"no second size for {s} (example {d}, multiple {m}, bounds "
                                  f"{lo}..{'' if hi is None else hi}); give the sizes "
                                  "explicitly")

        def new_aspect(c: int) -> bool:
            return all(c * dims[t] != d * out[t] for t in out)

        def new_parity(c: int) -> bool:
            return (c // m) % 2 != k % 2

        out[s] = next((c for c in sizes if new_parity(c) and new_aspect(c)),
                      next((c for c in sizes if new_aspect(c)), sizes[0]))
    return out


def dims_from_shapes(inputs: Sequence[InputSpec], shapes: Mapping[str, Sequence[int]],
                     where: str, require_all: bool = False) -> dict[str, int]:
    """The symbols' sizes implied by concrete input shapes: checks input names, ranks, fixed
    sizes and agreement between inputs (not bounds: the caller's :func:`check_dims` does)."""
    names = [s.name for s in inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown or (require_all and len(shapes) != len(names)):
        raise AttnDeployError(f"{where}: give a shape for {'each' if require_all else 'an'} "
                              f"input of {names}; no input(s) {unknown}")
    dims: dict[str, int] = {}
    for spec in inputs:
        if spec.name not in shapes:
            continue
        shape = tuple(shapes[spec.name])
        if len(shape) != len(spec.template):
            raise AttnDeployError(f"{where}: input {spec.name!r}: expected shape "
                                  f"{spec.describe()}, got {shape} (rank {len(shape)})")
        for axis, (t, d) in enumerate(zip(spec.template, shape)):
            if isinstance(t, int) and t != d:
                raise AttnDeployError(f"{where}: input {spec.name!r}: expected shape "
                                      f"{spec.describe()}, got {shape} (axis {axis} must be {t})")
            if isinstance(t, str):
                if t in dims and dims[t] != d:
                    raise AttnDeployError(f"{where}: input {spec.name!r}: dim {t} is {d} but "
                                          f"another input has {t} = {dims[t]}")
                dims[t] = d
    return dims


def shapes_to_dims(inputs: Sequence[InputSpec], texts: Iterable[str],
                   option: str = "--shapes") -> list[dict[str, int]]:
    """Shape sets in trtexec syntax, each giving every input a shape (``"image:3x3x40x72"``)
    -> the symbols' sizes of each set, checked against the fixed axes and between inputs (not
    bounds: the caller's :func:`check_dims` does). ``option`` names the argument in errors."""
    return [dims_from_shapes(inputs, parse_shapes(text), f"{option} {text!r}", require_all=True)
            for text in texts]


def parse_dims(text: str, where: str) -> tuple[int, ...]:
    """``"1x64x32x32"`` -> (1, 64, 32, 32); sizes >= 1."""
    try:
        shape = tuple(int(d) for d in text.strip().lower().split("x")) if text.strip() else ()
    except ValueError:
        raise AttnDeployError(f"{where}: sizes must be integers separated by 'x', got "
                              f"{text!r}") from None
    if any(d < 1 for d in shape):
        raise AttnDeployError(f"{where}: sizes must be >= 1, got {shape}")
    return shape


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """trtexec's syntax: ``"x:1x64x32x32,y:2x8"`` -> {"x": (1, 64, 32, 32), "y": (2, 8)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise AttnDeployError(f"shape {item!r}: expected NAME:D0xD1x..., e.g. x:1x64x32x32")
        if name in shapes:
            raise AttnDeployError(f"shape for input {name!r} given twice")
        shapes[name] = parse_dims(dims, f"shape {item!r}")
    if not shapes:
        raise AttnDeployError(f"no shapes in {text!r}; expected NAME:D0xD1x...")
    return shapes


def format_shapes(shapes: Mapping[str, Sequence[int]]) -> str:
    return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())


def parse_symbol_ints(items: Iterable[str] | None, option: str) -> dict[str, int]:
    """``["H=32,W=32"]`` -> {"H": 32, "W": 32} (``--dims``, ``--multiple``); INT >= 1."""
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
