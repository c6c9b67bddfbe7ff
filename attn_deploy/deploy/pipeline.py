"""One user model from PyTorch to a validated ONNX file and, where TensorRT is present, an
engine: layer swaps, export, validation at two or more shapes, engine build.

Used by ``attn-deploy export --model ...`` and ``attn-deploy export --recipe ...``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from torch import nn

from attn_deploy.deploy.input_args import InputSpec
from attn_deploy.deploy.layer_swaps import DeployReport, deployable
from attn_deploy.deploy.model_export import example_tensors, export_model, validate_model
from attn_deploy.errors import AttnDeployError

Progress = Callable[[str], None]


@dataclass
class EngineStep:
    status: str           # built | unavailable | error | not asked
    path: str | None = None
    message: str = ""


@dataclass
class DeployResult:
    onnx_path: Path
    output_names: list[str]
    swaps: DeployReport
    validation: object | None = None           # attn_deploy.harness.Validation
    engine: EngineStep = field(default_factory=lambda: EngineStep("not asked"))
    swap_check: str = ""                       # original vs swapped model, when layers changed

    @property
    def passed(self) -> bool:
        """Validated (when asked) and the engine built where it was asked and possible."""
        ok = self.validation is None or self.validation.passed
        return ok and self.engine.status in ("built", "unavailable", "not asked")


@dataclass
class EngineOptions:
    path: Path
    precision: str = "fp32"
    min: dict[str, int] = field(default_factory=dict)
    opt: dict[str, int] = field(default_factory=dict)
    max: dict[str, int] = field(default_factory=dict)


def deploy_model(model: nn.Module, output: str | Path, inputs: Sequence[InputSpec],
                 dims: Mapping[str, int], shapes: Sequence[Mapping[str, int]] | None, *,
                 output_names: Sequence[str] | None = None, swap_layers: bool = True,
                 opset: int | None = None, flavor: str = "default",
                 multiples: Mapping[str, int] | None = None,
                 min_dims: Mapping[str, int] | None = None,
                 max_dims: Mapping[str, int] | None = None,
                 runtimes: Sequence[str] | None = None, precision: str = "fp32",
                 rtol: float | None = None, engine: EngineOptions | None = None,
                 metadata: Mapping[str, str] | None = None, progress: Progress | None = None,
                 seed: int = 0) -> DeployResult:
    """Swap layers (``swap_layers``), export to ``output``, validate at ``shapes`` (None skips
    validation) and build ``engine`` where TensorRT is available."""
    report, swap_check = DeployReport(), ""
    if swap_layers:
        original = model
        model, report = deployable(model)
        if len(report):
            swap_check = check_swaps(original, model, example_tensors(inputs, dims, seed + 7))
    path, names = export_model(model, output, inputs, dims, output_names=output_names,
                               opset=opset, flavor=flavor, multiples=multiples,
                               min_dims=min_dims, max_dims=max_dims, metadata=metadata)
    if progress:
        progress(f"exported {path}")
    result = DeployResult(path, names, report, swap_check=swap_check)
    if shapes is not None:
        result.validation = validate_model(model, path, inputs, names, shapes,
                                           runtimes=runtimes, precision=precision, rtol=rtol,
                                           progress=progress, seed=seed)
    if engine is not None:
        result.engine = build_engine_step(path, inputs, engine, progress)
    return result


def check_swaps(original: nn.Module, swapped: nn.Module, example) -> str:
    """Run the original and the swapped model on the same inputs; raise if they disagree
    (relative L2 error above 1e-5 on any output). An original that cannot run here (mmcv's
    compiled ops on a machine without them) is reported, not failed."""
    import torch

    with torch.no_grad():
        try:
            ref = original(*example)
        except Exception as exc:  # any failure of user code: report it, the export goes on
            return (f"original model not runnable here ({type(exc).__name__}: "
                    f"{str(exc)[:120]}); swaps not compared")
        out = swapped(*example)
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    out = [out] if isinstance(out, torch.Tensor) else list(out)
    worst = 0.0
    for i, (a, b) in enumerate(zip(out, ref)):
        rel = float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))
        worst = max(worst, rel)
        if not rel <= 1e-5:
            raise AttnDeployError(f"the model with swapped layers differs from the original on "
                                  f"output {i}: relative L2 error {rel:.2e} > 1e-5")
    return f"swapped model matches the original (relative L2 error {worst:.1e})"


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
                      progress: Progress | None = None) -> EngineStep:
    """Build a serialized engine at ``engine.path`` when TensorRT and a GPU are present;
    otherwise report the step as unavailable with the reason (never as a failure)."""
    from attn_deploy.backends import availability
    from attn_deploy.export.atomic import atomic_write_bytes

    ok, why = availability("tensorrt")
    if not ok:
        if progress:
            progress(f"engine: skipped, TensorRT unavailable ({why})")
        return EngineStep("unavailable", message=why)
    lo, opt, hi = profile_shapes(inputs, engine)
    engine.path.parent.mkdir(parents=True, exist_ok=True)
    from attn_deploy.tensorrt.engine_builder import build_engine  # imports tensorrt lazily

    try:
        build = build_engine(onnx_path, precision=engine.precision, min_shapes=lo,
                             opt_shapes=opt, max_shapes=hi)
    except AttnDeployError as exc:
        return EngineStep("error", message=str(exc))
    path = atomic_write_bytes(engine.path, build.path.read_bytes())
    if progress:
        progress(f"engine: built {path} ({engine.precision})")
    return EngineStep("built", str(path))


def run_recipe(recipe, *, output: str | Path | None = None,
               runtimes: Sequence[str] | None = None, validate: bool = True,
               progress: Progress | None = None) -> DeployResult:
    """Everything a recipe says: build the model, export, validate, engine."""
    from attn_deploy.deploy.user_model import build_model

    model = build_model(recipe.factory, recipe.kwargs, recipe.checkpoint)
    output = Path(output) if output is not None else recipe.output
    output.parent.mkdir(parents=True, exist_ok=True)
    engine = None
    if recipe.tensorrt is not None:
        t = recipe.tensorrt
        sizes = [recipe.dims, *recipe.shapes]  # by default the profile covers every shape used
        engine = EngineOptions(
            Path(t["engine"]), t.get("precision", "fp32"),
            dict(t.get("min", {s: min(d[s] for d in sizes) for s in recipe.dims})),
            dict(t.get("opt", recipe.dims)),
            dict(t.get("max", {s: max(d[s] for d in sizes) for s in recipe.dims})))
    return deploy_model(
        model, output, recipe.inputs, recipe.dims, recipe.shapes if validate else None,
        output_names=recipe.output_names, swap_layers=recipe.deployable, opset=recipe.opset,
        flavor=recipe.flavor, multiples=recipe.multiples, min_dims=recipe.min_dims,
        max_dims=recipe.max_dims, runtimes=runtimes or recipe.runtimes,
        precision=recipe.precision, rtol=recipe.rtol(), engine=engine,
        metadata={"attn_deploy_recipe": recipe.name, "attn_deploy_model": recipe.factory},
        progress=progress, seed=recipe.seed)
