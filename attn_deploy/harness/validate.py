"""Validation: export a block once, run the file on every runtime present at two or more
shapes from the same file, and compare each against PyTorch eager fp32.

A runtime that is not installed is recorded as ``unavailable`` with the reason, never as a pass
or a failure. Each shape gets fresh random inputs (a different seed per shape).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx

from attn_deploy.backends import ONNX_RUNTIMES, RUNTIMES, Runner, availability, onnx_runner
from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.compare import Comparison, compare
from attn_deploy.shapes import format_shapes

DEFAULT_RUNTIMES = ("ort-cpu", "ort-cuda", "ort-tensorrt", "onnx-reference", "tensorrt")
Progress = Callable[[str], None]


@dataclass
class RunResult:
    """One runtime at one shape."""

    runtime: str
    shapes: str
    status: str  # pass | fail | degenerate | error | unavailable
    comparison: Comparison | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclass
class Validation:
    """Everything known about one block or file after validation."""

    name: str
    onnx_path: str | None = None
    export_ok: bool = False
    export_error: str = ""
    export_seconds: float = 0.0
    node_count: int = 0
    custom_nodes: list[str] = field(default_factory=list)
    results: list[RunResult] = field(default_factory=list)
    # (shapes label, inputs, reference outputs) per shape, for golden outputs and reports
    cases: list[tuple[str, dict, dict]] = field(default_factory=list, repr=False)
    quantization: object | None = None  # the QuantizeResult of an int8 validation

    def for_runtime(self, runtime: str) -> list[RunResult]:
        return [r for r in self.results if r.runtime == runtime]

    def runtime_status(self, runtime: str, dynamic_only: bool = False) -> str:
        """pass / fail / degenerate / error / unavailable / not run for one runtime (optionally
        only the shapes after the first, i.e. the dynamic-shape check)."""
        rs = self.for_runtime(runtime)
        if dynamic_only:
            # an unavailable runtime or a session that could not be built has one result
            rs = [r for r in rs if r.shapes == "-"] or rs[1:]
        if not rs:
            return "not run"
        for status in ("unavailable", "error", "fail", "degenerate"):
            if any(r.status == status for r in rs):
                return status
        return "pass"

    @property
    def passed(self) -> bool:
        """Exported, and every available runtime passed at every shape."""
        ran = [r for r in self.results if r.status != "unavailable"]
        return self.export_ok and bool(ran) and all(r.passed for r in ran)


def graph_summary(path: str | Path) -> tuple[int, list[str]]:
    """(node count of the main graph, sorted custom op types outside the default domain)."""
    proto = onnx.load(str(path), load_external_data=False)
    custom = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node
                     if n.domain not in ("", "ai.onnx")})
    return len(proto.graph.node), custom


def run_runtimes(v: Validation, path: Path, runtimes: Iterable[str],
                  cases: Sequence[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]],
                  precision: str, rtol: float | None, progress: Progress | None,
                  atol: float | None = None, allow_nonfinite: bool = False) -> None:
    v.cases = list(cases)
    for runtime in runtimes:
        ok, why = availability(runtime)
        if not ok:
            v.results.append(RunResult(runtime, "-", "unavailable", message=why))
            continue
        if precision == "int8" and runtime == "tensorrt":
            # the Q/DQ file needs a strongly typed build (TensorRT 11) or the INT8 flag (10.x);
            # the engine builder takes fp32/fp16 only so far
            v.results.append(RunResult(runtime, "-", "unavailable",
                                       message="int8 (Q/DQ) engines are not built by the "
                                               "TensorRT runner yet"))
            continue
        # only TensorRT builds at a reduced precision; every other runtime runs the fp32 file,
        # except an int8 (Q/DQ) file, which every runtime runs as it is
        rt_precision = precision if runtime == "tensorrt" or precision == "int8" else "fp32"
        options = {"precision": precision} if runtime == "tensorrt" else {}
        try:
            runner = onnx_runner(runtime, path, **options).activate()
        except Exception as exc:  # a session that cannot be built is this runtime's failure
            v.results.append(RunResult(runtime, "-", "error", message=f"{type(exc).__name__}: "
                                                                      f"{str(exc)[:500]}"))
            continue
        with runner:
            for label, feed, ref in cases:
                start = time.perf_counter()
                try:
                    out = runner.infer(feed)
                except Exception as exc:
                    v.results.append(RunResult(runtime, label, "error",
                                               message=f"{type(exc).__name__}: {str(exc)[:500]}"))
                    continue
                # the caller's rtol is for runs at ``precision``; fp32 runs keep the fp32 rule
                if rt_precision == "int8":
                    from attn_deploy.quantize.accuracy import measure_accuracy
                    cmp = measure_accuracy(out, ref, "int8")
                    status = "pass" if cmp else "fail"
                else:
                    same = rt_precision == precision
                    cmp = compare(out, ref, rt_precision, rtol if same else None,
                                  atol if same else None, allow_nonfinite)
                    status = cmp.status
                v.results.append(RunResult(runtime, label, status, cmp,
                                           "" if cmp else str(cmp),
                                           time.perf_counter() - start))
        if progress:
            progress(f"{v.name}: {runtime} {v.runtime_status(runtime)}")


def check_runtimes(runtimes: Iterable[str] | None) -> tuple[str, ...]:
    """The ONNX runtimes to validate; PyTorch is the reference, not a runtime under test."""
    runtimes = tuple(runtimes or DEFAULT_RUNTIMES)
    bad = [r for r in runtimes if r not in RUNTIMES]
    if bad:
        raise AttnDeployError(f"unknown runtime(s) {bad}; valid: {', '.join(RUNTIMES)}")
    torch_rts = [r for r in runtimes if r not in ONNX_RUNTIMES]
    if torch_rts:
        raise AttnDeployError(f"{', '.join(torch_rts)}: PyTorch is the reference of a "
                              f"validation, not a runtime under test; choose from "
                              f"{', '.join(ONNX_RUNTIMES)}")
    return runtimes


def validate_block(key: str, *, runtimes: Iterable[str] | None = None,
                   dims: Sequence[Mapping[str, int]] | None = None, precision: str = "fp32",
                   workdir: str | Path | None = None, model: "torch.nn.Module | None" = None,
                   flavor: str = "default", progress: Progress | None = None,
                   seed: int = 0, allow_nonfinite: bool = False) -> Validation:
    """Export block ``key`` once to ``workdir`` and validate it on ``runtimes`` at ``dims``
    (default: the spec's dims and its alternate dims).

    Without ``workdir`` the file goes to a temp folder that is removed before returning
    (``onnx_path`` is then None)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="attn_deploy_") as tmp:
            v = validate_block(key, runtimes=runtimes, dims=dims, precision=precision,
                               workdir=tmp, model=model, flavor=flavor, progress=progress,
                               seed=seed, allow_nonfinite=allow_nonfinite)
        v.onnx_path = None
        return v
    import torch

    from attn_deploy.export import export_block
    from attn_deploy.modules.registry import create, spec

    runtimes = check_runtimes(runtimes)
    if model is None:
        torch.manual_seed(seed)
        model = create(key)
    kwargs = getattr(model, "attn_deploy_config", {}).get("kwargs", {})
    s = spec(key, **kwargs)
    dims = list(dims) if dims else [dict(s.dims), s.alternate_dims()]
    v = Validation(key)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{key}.onnx"
    start = time.perf_counter()
    # the export runs the file on ONNX Runtime at the alternate dims unless this validation
    # does it anyway (no need to pay for it twice)
    reuse = "ort-cpu" in runtimes and availability("ort-cpu")[0] and \
        any(dict(d) == s.alternate_dims() for d in dims)
    try:
        export_block(key, path, model=model, flavor=flavor, second_shape_check=not reuse)
        v.export_ok, v.onnx_path = True, str(path)
        v.node_count, v.custom_nodes = graph_summary(path)
    except AttnDeployError as exc:
        v.export_error = str(exc)
    v.export_seconds = time.perf_counter() - start
    if progress:
        progress(f"{key}: export {'ok' if v.export_ok else 'FAILED'} "
                 f"({v.export_seconds:.1f} s)")
    if not v.export_ok:
        return v
    if precision == "int8":
        from attn_deploy.quantize.block_quantization import validate_int8
        return validate_int8(v, model, runtimes, dims, seed, progress)
    cases = reference_cases(key, model, dims, seed)
    run_runtimes(v, path, runtimes, cases, precision, s.rtol if precision == "fp32" else None,
                  progress, allow_nonfinite=allow_nonfinite)
    return v


Case = tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]  # label, feed, reference


def reference_cases(key: str, model: "torch.nn.Module", dims: Sequence[Mapping[str, int]],
                    seed: int = 0) -> list[Case]:
    """(shape label, feed, PyTorch fp32 outputs) per dims, on fresh inputs (seed + 101 + i;
    int8 calibration uses other seeds, so these are held out)."""
    from attn_deploy.backends.torch_runner import TorchRunner
    from attn_deploy.modules.registry import example_inputs, spec

    kwargs = getattr(model, "attn_deploy_config", {}).get("kwargs", {})
    s = spec(key, **kwargs)
    reference = TorchRunner(model, {n: (s.dtype(n), t) for n, t in s.inputs.items()}, s.outputs)
    cases = []
    with reference:
        for i, d in enumerate(dims):
            tensors = example_inputs(key, seed=seed + 101 + i, config=kwargs, **d)
            feed = {n: t.numpy() for n, t in zip(s.inputs, tensors)}
            label = format_shapes({n: a.shape for n, a in feed.items()})
            cases.append((label, feed, reference.infer(feed)))
    return cases


def validate_file(path: str | Path, *, shapes: Sequence[Mapping[str, tuple[int, ...]]],
                  runtimes: Iterable[str] | None = None, precision: str = "fp32",
                  reference_runtime: str = "ort-cpu", progress: Progress | None = None,
                  seed: int = 0, reference: Runner | None = None, rtol: float | None = None,
                  atol: float | None = None,
                  reference_model: str | Path | None = None,
                  allow_nonfinite: bool = False) -> Validation:
    """Validate an ONNX file: the reference is ``reference_runtime`` (ONNX Runtime CPU, fp32)
    since no PyTorch model comes with a file; every other runtime is compared against it.
    ``reference``: a runner to use instead (e.g. a TorchRunner of the model the file came
    from); then every runtime in ``runtimes`` is compared with it.
    ``reference_model``: the fp32 file ``path`` was made from (an int8 file's, with
    ``precision="int8"``); the reference runtime runs it, and every runtime, the reference
    runtime included, runs ``path``."""
    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.onnx_file import check_feed_size, check_runtime_can_run, read_onnx_file

    path = Path(path)
    proto = read_onnx_file(path, load_weights=False)
    if precision == "int8" and reference_model is None and reference is None:
        raise AttnDeployError(f"{path.name}: an int8 validation needs the fp32 model it was "
                              "quantized from as the reference (--reference FP32.onnx)")
    ref_path, ref_proto = path, proto
    if reference_model is not None:
        ref_path = Path(reference_model)
        ref_proto = read_onnx_file(ref_path, load_weights=False)
    if reference is None:
        check_runtime_can_run(ref_proto, ref_path, reference_runtime)
    runtimes = [r for r in check_runtimes(runtimes)
                if reference is not None or r != reference_runtime or ref_path != path]
    if not runtimes:
        raise AttnDeployError(f"{reference_runtime} is the reference for an ONNX file; name "
                              f"another runtime to compare with it")
    v = Validation(path.name, str(path), export_ok=True)
    v.node_count, v.custom_nodes = graph_summary(path)
    metas = metadata_from_proto(proto)
    if not shapes:
        raise AttnDeployError(f"{path.name}: give --shapes for its inputs {list(metas)}")
    rng = np.random.default_rng(seed)
    cases = []
    with reference or onnx_runner(reference_runtime, ref_path) as ref_runner:
        for shp in shapes:
            unknown = set(shp) - set(metas)
            if unknown:
                raise AttnDeployError(f"{path.name}: no input(s) {sorted(unknown)}; inputs are "
                                      f"{list(metas)}")
            feed = {}
            check_feed_size(path, {n: shp[n] for n in metas if n in shp},
                            {n: m.dtype for n, m in metas.items()})
            for name, meta in metas.items():
                if name not in shp:
                    raise AttnDeployError(f"{path.name}: no shape given for input {name!r}; "
                                          f"inputs are {list(metas)}")
                feed[name] = random_input(rng, shp[name], meta.dtype)
            label = format_shapes({n: a.shape for n, a in feed.items()})
            try:
                ref = ref_runner.infer(feed)
            except AttnDeployError:
                raise
            except Exception as exc:  # the model itself cannot run these shapes
                raise AttnDeployError(
                    f"{path.name}: the reference ({ref_runner.name}) cannot run shapes "
                    f"{label}: {type(exc).__name__}: {str(exc)[:300]}") from exc
            cases.append((label, feed, ref))
    run_runtimes(v, path, runtimes, cases, precision, rtol, progress, atol=atol,
                 allow_nonfinite=allow_nonfinite)
    return v


def random_input(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.2
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
