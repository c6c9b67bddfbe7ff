"""The engine step of the deploy pipeline: the optimization profile per symbol, and building a
serialized TensorRT engine where TensorRT and a GPU are present."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import InputSpec


@dataclass
class EngineStep:
    status: str           # built | unavailable | error | not asked | not built
    path: str | None = None
    message: str = ""


@dataclass
class EngineOptions:
    path: Path
    precision: str = "fp32"
    min: dict[str, int] = field(default_factory=dict)
    opt: dict[str, int] = field(default_factory=dict)
    max: dict[str, int] = field(default_factory=dict)


def engine_profile(path: str | Path, precision: str, dims: Mapping[str, int],
                   shapes: Sequence[Mapping[str, int]], *, low: Mapping[str, int] | None = None,
                   opt: Mapping[str, int] | None = None,
                   high: Mapping[str, int] | None = None) -> EngineOptions:
    """The engine's optimization profile per symbol: unless given, opt at the example sizes
    ``dims`` and min/max spanning them and every validation shape, so the engine runs every
    shape the export was validated at."""
    sizes = [dims, *shapes]
    low = {s: min(d[s] for d in sizes) for s in dims} if low is None else low
    high = {s: max(d[s] for d in sizes) for s in dims} if high is None else high
    return EngineOptions(Path(path), precision, dict(low), dict(dims if opt is None else opt),
                         dict(high))


def profile_shapes(inputs: Sequence[InputSpec], engine: EngineOptions
                   ) -> tuple[dict, dict, dict]:
    """min/opt/max shapes per input from per-symbol sizes."""
    out = []
    for kind in ("min", "opt", "max"):
        sizes = getattr(engine, kind)
        shapes = {}
        for spec in inputs:
            missing = [d for d in spec.template if isinstance(d, str) and d not in sizes]
            if missing:
                raise AttnDeployError(f"[tensorrt] {kind}: no size for {missing} "
                                      f"(input {spec.name!r} {tuple(spec.template)})")
            shapes[spec.name] = spec.shape(sizes)
        out.append(shapes)
    return out[0], out[1], out[2]


def build_engine_step(onnx_path: Path, inputs: Sequence[InputSpec], engine: EngineOptions,
                      progress: Callable[[str], None] | None = None) -> EngineStep:
    """Build a serialized engine at ``engine.path`` when TensorRT and a GPU are present;
    otherwise report the step as unavailable with the reason (never as a failure)."""
    from attn_deploy.atomic_write import atomic_write_bytes
    from attn_deploy.backends import availability

    ok, why = availability("tensorrt")
    if not ok:
        if progress:
            progress(f"engine: skipped, TensorRT unavailable ({why})")
        return EngineStep("unavailable", message=why)
    lo, opt, hi = profile_shapes(inputs, engine)
    engine.path.parent.mkdir(parents=True, exist_ok=True)
    # imports tensorrt lazily
    from attn_deploy.backends.tensorrt.engine_builder import build_engine

    try:
        build = build_engine(onnx_path, precision=engine.precision, min_shapes=lo,
                             opt_shapes=opt, max_shapes=hi)
    except AttnDeployError as exc:
        return EngineStep("error", message=str(exc))
    path = atomic_write_bytes(engine.path, build.path.read_bytes())
    if progress:
        progress(f"engine: built {path} ({engine.precision})")
    return EngineStep("built", str(path))
