"""Size presets for ``attn-deploy bench --sizes``: each block's default dims, or deployment sizes.

The default dims (e.g. 2x64x12x12) keep tests and reports fast, but there per-call overhead
dominates. ``deploy`` gives each block the size it runs at in a deployed network: CARAFE and
criss-cross attention at the sizes of issue 15 (CARAFE FPN, CCNet head at 512x512), the other
blocks at batch 1 with 32x32 feature maps (stride 16 of a 512x512 image) and 128-long sequences,
within each block's bounds (e.g. the synthesizer's fixed maximum length) and at its default
channels, so that small blocks stay small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from attn_deploy.errors import AttnDeployError

SIZES = ("default", "deploy")


@dataclass(frozen=True)
class BenchSize:
    """Constructor arguments and dim sizes of one block for a benchmark."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    dims: Mapping[str, int] = field(default_factory=dict)
    note: str = ""


# Blocks whose deployment size is known from the networks that use them.
DEPLOY_BLOCKS: Mapping[str, BenchSize] = MappingProxyType({
    "carafe": BenchSize({"channels": 256}, {"N": 1, "H": 64, "W": 64},
                        "CARAFE FPN: 256-channel 64x64 level upsampled to 128x128"),
    "cca": BenchSize({"channels": 512}, {"N": 1, "H": 64, "W": 64},
                     "CCNet head at 512x512 (stride 8): 512 channels, Cq 64"),
})
# Every other block: per dim symbol (spatial H/W, sequence lengths, banks, regions).
DEPLOY_DIMS: Mapping[str, int] = MappingProxyType({
    "N": 1, "H": 32, "W": 32, "L": 128, "S": 128, "K": 128, "Nv": 100, "Nq": 32,
    "Ts": 32, "Tl": 256})


def _fit(spec, dims: Mapping[str, int]) -> dict[str, int]:
    """``dims`` moved into the spec's bounds and down to its multiples."""
    fitted = {}
    for sym in spec.symbols:
        d = dims.get(sym, spec.dims[sym])
        lo, hi, m = spec.min_dims.get(sym, 1), spec.max_dims.get(sym), spec.multiples.get(sym, 1)
        d = max(lo, min(d, hi) if hi is not None else d)
        fitted[sym] = max(m, d - d % m)
    return spec.check_dims(fitted)


def bench_size(key: str, sizes: str = "default") -> BenchSize:
    """Constructor kwargs and dims (every symbol filled in) of block ``key`` for preset
    ``sizes`` ("default" or "deploy")."""
    from attn_deploy.modules.registry import spec

    if sizes not in SIZES:
        raise AttnDeployError(f"sizes: expected one of {list(SIZES)}, got {sizes!r}")
    if sizes == "default":
        s = spec(key)
        return BenchSize({}, dict(s.dims), "default dims")
    preset = DEPLOY_BLOCKS.get(key)
    if preset is not None:
        s = spec(key, **preset.kwargs)
        return BenchSize(dict(preset.kwargs), _fit(s, preset.dims), preset.note)
    s = spec(key)
    return BenchSize({}, _fit(s, DEPLOY_DIMS), "deploy preset (batch 1, 32x32 maps, 128 tokens)")
