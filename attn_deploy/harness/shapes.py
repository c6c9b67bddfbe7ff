"""Shape arguments in trtexec's syntax (``x:1x64x32x32,mask:1x16``) and their mapping onto a
block spec's dim symbols."""
from __future__ import annotations

from typing import Mapping

from attn_deploy.errors import AttnDeployError


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """``"x:1x64x32x32,y:2x8"`` -> {"x": (1, 64, 32, 32), "y": (2, 8)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, dims = item.rpartition(":")
        if not sep or not name:
            raise AttnDeployError(f"shape {item!r}: expected NAME:D0xD1x..., e.g. x:1x64x32x32")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        except ValueError:
            raise AttnDeployError(f"shape {item!r}: dims must be integers separated by 'x', "
                                  f"got {dims!r}") from None
        if any(d < 1 for d in shape):
            raise AttnDeployError(f"shape {item!r}: dims must be >= 1")
        if name in shapes:
            raise AttnDeployError(f"shape for input {name!r} given twice")
        shapes[name] = shape
    if not shapes:
        raise AttnDeployError(f"no shapes in {text!r}; expected NAME:D0xD1x...")
    return shapes


def format_shapes(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ",".join(f"{n}:{'x'.join(str(d) for d in s)}" for n, s in shapes.items())


def dims_from_shapes(spec, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The dim symbols' sizes implied by concrete input shapes of block ``spec``; checks ranks,
    fixed sizes, agreement between inputs, and the spec's bounds and multiples."""
    unknown = set(shapes) - set(spec.inputs)
    if unknown:
        raise AttnDeployError(f"{spec.key}: no input(s) {sorted(unknown)}; "
                              f"inputs are {list(spec.inputs)}")
    dims: dict[str, int] = {}
    for name, template in spec.inputs.items():
        if name not in shapes:
            continue
        shape = shapes[name]
        want = "(" + ", ".join(str(d) for d in template) + ")"
        if len(shape) != len(template):
            raise AttnDeployError(f"{spec.key}: input {name!r}: expected shape {want}, "
                                  f"got {tuple(shape)} (rank {len(shape)})")
        for axis, (t, d) in enumerate(zip(template, shape)):
            if isinstance(t, int) and t != d:
                raise AttnDeployError(f"{spec.key}: input {name!r}: expected shape {want}, "
                                      f"got {tuple(shape)} (axis {axis} must be {t})")
            if isinstance(t, str):
                if t in dims and dims[t] != d:
                    raise AttnDeployError(f"{spec.key}: input {name!r}: dim {t} is {d} but "
                                          f"another input has {t} = {dims[t]}")
                dims[t] = d
    return spec.check_dims(dims)
