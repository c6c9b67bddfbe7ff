"""One user model from PyTorch to a validated ONNX file and, where TensorRT is present, an
engine: layer swaps, export with named inputs and dynamic axes, validation against the PyTorch
model at two or more shapes (fresh random inputs per shape, from the same file), engine build.

The model is exported beside the output path and validated there; only a model that passed
replaces the file at the output path (atomically). One that failed is kept as
``NAME.failed.onnx`` and the previous file stays in place.

Used by ``attn-deploy export --model ...`` and ``attn-deploy export --recipe ...``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from attn_deploy.deploy.engine_step import (EngineOptions, EngineStep, build_engine_step,
                                            engine_profile)
from attn_deploy.deploy.layer_swaps import DeployReport, deployable
from attn_deploy.errors import AttnDeployError, UserCodeError, one_line
from attn_deploy.shapes import InputSpec, check_dims
from attn_deploy.atomic_write import failed_path, keep_failed, promote, staged_file

Progress = Callable[[str], None]


@dataclass
class DeployResult:
    onnx_path: Path
    output_names: list[str]
    swaps: DeployReport
    validation: object | None = None           # attn_deploy.harness.Validation
    engine: EngineStep = field(default_factory=lambda: EngineStep("not asked"))
    swap_check: str = ""                       # original vs swapped model, when layers changed
    checkpoint: object | None = None           # attn_deploy.deploy.CheckpointReport, if loaded
    quantization: object | None = None         # attn_deploy.quantize.QuantizeResult
    int8: object | None = None                 # the int8 file's Validation
    failed_path: Path | None = None            # where a model that failed validation was kept

    @property
    def passed(self) -> bool:
        """Validated (when asked), the int8 file within its rule (when asked) and the engine
        built where it was asked and possible."""
        ok = self.validation is None or self.validation.passed
        ok = ok and (self.int8 is None or self.int8.passed)
        return ok and self.engine.status in ("built", "unavailable", "not asked")


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
        try:
            out = model(*example)
        except AttnDeployError:
            raise
        except Exception as exc:  # the model's own forward: the user's code
            shapes = ", ".join(str(tuple(t.shape)) for t in example)
            raise UserCodeError(f"{type(model).__name__}: forward failed on the example "
                                f"input(s) of shape {shapes}: {one_line(exc)}") from exc
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
                 metadata: Mapping[str, str] | None = None,
                 keep_failed_as: str | Path | None = None) -> tuple[Path, list[str]]:
    """Export ``model`` with ``inputs`` at example sizes ``dims``; every symbol is a dynamic
    axis. Returns (path, output names). A model the export checks refuse is kept as
    ``keep_failed_as`` (default NAME.failed.onnx beside ``path``)."""
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
                       max_dims=max_dims, metadata=metadata, keep_failed_as=keep_failed_as)
    return path, names


def validate_model(model: nn.Module, path: str | Path, inputs: Sequence[InputSpec],
                   output_names: Sequence[str], shapes: Sequence[Mapping[str, int]], *,
                   runtimes: Iterable[str] | None = None, precision: str = "fp32",
                   rtol: float | None = None, progress=None, seed: int = 0,
                   atol: float | None = None, allow_nonfinite: bool = False):
    """Run the ONNX file on every runtime in ``runtimes`` at each dims in ``shapes`` and compare
    with ``model`` in PyTorch eager fp32. Returns a :class:`attn_deploy.harness.Validation`."""
    from attn_deploy.backends import TorchRunner
    from attn_deploy.shapes import format_shapes
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
    run_runtimes(v, path, runtimes, cases, precision, rtol, progress, atol=atol,
                 allow_nonfinite=allow_nonfinite)
    return v


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
                 seed: int = 0, allow_nonfinite: bool = False) -> DeployResult:
    """Swap layers (``swap_layers``), export beside ``output``, validate at ``shapes`` (None
    skips validation), put the file in place only if it passed, and build ``engine`` where
    TensorRT is available."""
    report, swap_check = DeployReport(), ""
    if swap_layers:
        original = model
        model, report = deployable(model)
        if len(report):
            swap_check = check_swaps(original, model, example_tensors(inputs, dims, seed + 7))
    output = Path(output)
    with staged_file(output, suffix=".onnx") as staged:
        _, names = export_model(model, staged, inputs, dims, output_names=output_names,
                                opset=opset, flavor=flavor, multiples=multiples,
                                min_dims=min_dims, max_dims=max_dims, metadata=metadata,
                                keep_failed_as=failed_path(output))
        result = DeployResult(output, names, report, swap_check=swap_check)
        if shapes is not None:
            v = validate_model(model, staged, inputs, names, shapes, runtimes=runtimes,
                               precision=precision, rtol=rtol, progress=progress, seed=seed,
                               allow_nonfinite=allow_nonfinite)
            v.name, v.onnx_path = output.name, str(output)
            result.validation = v
            if not v.passed:
                result.failed_path = keep_failed(staged, output)
                result.engine = EngineStep("not built", message="the model failed validation")
                if progress:
                    progress(f"validation failed: kept the new model as {result.failed_path}; "
                             f"{output} was left as it was")
                return result
        promote(staged, output)
    if progress:
        progress(f"exported {output}")
    if engine is not None:
        result.engine = build_engine_step(output, inputs, engine, progress)
    return result


def check_swaps(original: nn.Module, swapped: nn.Module, example) -> str:
    """Run the original and the swapped model on the same inputs; raise if they disagree
    (relative L2 error above 1e-5 on any output). An original that cannot run here (mmcv's
    compiled ops on a machine without them) is reported, not failed."""
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


def quantize_step(recipe, result: DeployResult, shapes: Sequence[Mapping[str, int]] | None,
                  progress: Progress | None = None) -> None:
    """A recipe's [quantize] table: the int8 file beside the export, validated (when
    ``shapes``) against the fp32 file, itself validated against PyTorch, on held-out inputs."""
    from attn_deploy.harness.validate import validate_file
    from attn_deploy.quantize.quantizer import quantize_model

    q = recipe.quantize
    output = Path(q["output"])
    output.parent.mkdir(parents=True, exist_ok=True)
    samples = q.get("samples", 32)
    calibration = q["calibration"]
    if calibration == "random":  # seeded normals at the export sizes: smoke tests only
        calibration = [{s.name: t.numpy() for s, t in zip(recipe.inputs, example_tensors(
            recipe.inputs, recipe.dims, seed=recipe.seed + 5000 + i))} for i in range(samples)]
    result.quantization = quantize_model(result.onnx_path, output, calibration,
                                         method=q.get("method", "minmax"), samples=samples)
    if progress:
        progress(f"quantized {output} ({len(result.quantization.quantized_nodes)} node(s) int8)")
    if shapes is not None:
        result.int8 = validate_file(
            output, shapes=[{s.name: s.shape(d) for s in recipe.inputs} for d in shapes],
            runtimes=q.get("runtimes", ["ort-cpu"]), precision="int8",
            reference_model=result.onnx_path, progress=progress, seed=recipe.seed + 1)


def run_recipe(recipe, *, output: str | Path | None = None,
               runtimes: Sequence[str] | None = None, validate: bool = True,
               progress: Progress | None = None,
               allow_nonfinite: bool | None = None) -> DeployResult:
    """Everything a recipe says: build the model, load its checkpoint, export, validate,
    engine. ``allow_nonfinite`` (None: the recipe's ``[validate] allow_nonfinite``)."""
    from attn_deploy.deploy.checkpoint import load_checkpoint
    from attn_deploy.deploy.user_model import build_model

    model = build_model(recipe.factory, recipe.kwargs)
    loaded = None
    if recipe.checkpoint is not None:
        loaded = load_checkpoint(model, recipe.checkpoint, recipe.checkpoint_options)
        if progress:
            progress(f"loaded {recipe.checkpoint} ({loaded.loaded} tensors)")
    output = Path(output) if output is not None else recipe.output
    output.parent.mkdir(parents=True, exist_ok=True)
    engine = None
    if recipe.tensorrt is not None:
        t = recipe.tensorrt
        engine = engine_profile(t["engine"], t.get("precision", "fp32"), recipe.dims,
                                recipe.shapes, low=t.get("min"), opt=t.get("opt"),
                                high=t.get("max"))
    result = deploy_model(
        model, output, recipe.inputs, recipe.dims, recipe.shapes if validate else None,
        output_names=recipe.output_names, swap_layers=recipe.deployable, opset=recipe.opset,
        flavor=recipe.flavor, multiples=recipe.multiples, min_dims=recipe.min_dims,
        max_dims=recipe.max_dims, runtimes=runtimes or recipe.runtimes,
        precision=recipe.precision, rtol=recipe.rtol(), engine=engine,
        metadata={"attn_deploy_recipe": recipe.name, "attn_deploy_model": recipe.factory},
        progress=progress, seed=recipe.seed,
        allow_nonfinite=recipe.allow_nonfinite if allow_nonfinite is None else allow_nonfinite)
    result.checkpoint = loaded
    if recipe.quantize is not None:
        quantize_step(recipe, result, recipe.shapes if validate else None, progress)
    return result
