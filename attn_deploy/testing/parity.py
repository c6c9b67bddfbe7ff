"""``assert_parity`` and ``assert_file_parity``: attn_deploy's validation as assertions for a
pytest suite (or any test runner).

Both run the validation of :mod:`attn_deploy.harness` and judge it:

- an output out of tolerance, a runtime that cannot run the file: ``AssertionError`` whose
  message is the table ``attn-deploy validate`` prints;
- a runtime that is absent and was asked for by name (``runtimes=`` or the session's
  ``--attn-deploy-runtimes``): ``pytest.skip`` with the reason, after the others passed;
- a runtime that is absent and required (``require=`` or ``--attn-deploy-require``):
  ``AssertionError`` before anything is exported.

Without ``runtimes`` (here and in the session) every runtime present is run, and the absent
ones are simply not run. pytest is imported only to skip.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

Shapes = Sequence["str | Mapping[str, Sequence[int]]"]

# set by the pytest plugin from --attn-deploy-runtimes / --attn-deploy-require
_session: dict[str, tuple[str, ...] | None] = {"runtimes": None, "require": ()}


def configure_session(runtimes: Iterable[str] | None, require: Iterable[str] | None) -> None:
    """The runtimes to run and to require when a call does not name them (the plugin sets
    these from its command-line options; ``None`` runs every runtime present)."""
    from attn_deploy.harness.validate import check_runtimes

    _session["runtimes"] = check_runtimes(runtimes) if runtimes else None
    _session["require"] = check_runtimes(require) if require else ()


def session_runtimes() -> tuple[str, ...]:
    """The runtimes a call without ``runtimes`` runs in this session: the session's, or every
    runtime present here; required ones included."""
    from attn_deploy.backends import availability

    runtimes, _, named = _select(None, None)
    if named:
        return runtimes
    return tuple(r for r in runtimes if availability(r)[0] or r in _session["require"])


def _select(runtimes, require) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """(runtimes to run, runtimes required, whether the runtimes were named)."""
    from attn_deploy.harness.validate import DEFAULT_RUNTIMES, check_runtimes

    require = tuple(dict.fromkeys((check_runtimes(require) if require else ())
                                  + tuple(_session["require"] or ())))
    named = runtimes or _session["runtimes"]
    chosen = check_runtimes(named) if named else DEFAULT_RUNTIMES
    chosen = tuple(dict.fromkeys(tuple(chosen) + require))
    return chosen, require, bool(named)


def _precheck(runtimes: Sequence[str], require: Sequence[str], named: bool) -> dict[str, str]:
    """Fail now on an absent required runtime; skip now when every named runtime is absent.
    Returns {absent runtime: reason}."""
    from attn_deploy.backends import availability

    absent = {r: why for r in runtimes for ok, why in [availability(r)] if not ok}
    missing = {r: why for r, why in absent.items() if r in require}
    if missing:
        raise AssertionError("required runtime(s) absent: " + "; ".join(
            f"{r}: {why}" for r, why in missing.items()))
    if named and len(absent) == len(runtimes):
        _skip("; ".join(f"{r} unavailable: {why}" for r, why in absent.items()))
    return absent


def _judge(v, absent: Mapping[str, str], named: bool, what: str) -> Any:
    """Raise the table on any failure; skip when a named runtime was absent; else return."""
    from attn_deploy.harness.result_files import failed
    from attn_deploy.harness.table import format_validation

    if not v.export_ok or any(failed(r) for r in v.results):
        raise AssertionError(f"attn_deploy parity failed for {what}:\n{format_validation(v)}")
    ran = sorted({r.runtime for r in v.results if r.status == "pass"})
    if not ran:
        _skip(f"{what}: no runtime ran")
    if named and absent:
        _skip(f"{what}: {', '.join(ran)} passed at {len(v.cases)} shape(s); "
              + "; ".join(f"{r} unavailable: {why}" for r, why in absent.items()))
    return v


def _skip(reason: str) -> None:
    import pytest  # only a skip needs pytest

    pytest.skip(reason)


def _input_specs(example: Sequence, names: Sequence[str],
                 dynamic_axes: Mapping[str, Mapping[int, str]] | None):
    """InputSpecs (shape templates with the dynamic axes' symbols) and the example sizes."""
    from attn_deploy.shapes import InputSpec
    from attn_deploy.errors import AttnDeployError

    dynamic_axes = dynamic_axes or {}
    specs, dims = [], {}
    for name, t in zip(names, example):
        template = list(t.shape)
        for axis, symbol in dynamic_axes.get(name, {}).items():
            if not 0 <= axis < t.dim():
                raise AttnDeployError(f"dynamic_axes[{name!r}]: axis {axis} out of range for "
                                      f"an input of shape {tuple(t.shape)}")
            if dims.setdefault(symbol, t.shape[axis]) != t.shape[axis]:
                raise AttnDeployError(f"dynamic_axes: {symbol!r} is {dims[symbol]} on one "
                                      f"axis and {t.shape[axis]} on {name!r} axis {axis}")
            template[axis] = symbol
        specs.append(InputSpec(name, tuple(template), t.dtype))
    return specs, dims


def _shape_texts(shapes: Shapes) -> list[str]:
    """Shapes as trtexec text (``"x:2x8x6x6,y:2x4"``) from text or {name: shape} dicts."""
    from attn_deploy.shapes import format_shapes

    return [s if isinstance(s, str) else format_shapes({n: tuple(d) for n, d in s.items()})
            for s in shapes]


def assert_parity(model, example_inputs, *, input_names: Sequence[str] | None = None,
                  output_names: Sequence[str] | None = None,
                  dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                  shapes: Shapes | None = None, runtimes: Iterable[str] | None = None,
                  precision: str = "fp32", rtol: float | None = None,
                  atol: float | None = None, require: Iterable[str] | None = None):
    """Export ``model`` to a temporary ONNX file and assert that every runtime gives PyTorch
    eager's numbers at every shape. Returns the :class:`~attn_deploy.harness.Validation`.

    ``example_inputs``: a tensor or a tuple of tensors, e.g. ``x [N, C, H, W]``.
    ``input_names`` / ``output_names``: default ``input``/``output`` (one tensor) or
    ``input_0``, ``input_1``, ... ``dynamic_axes``: ``{"x": {0: "N", 2: "H", 3: "W"}}``;
    inputs sharing a symbol share the size. ``shapes``: the validation shapes, each
    ``"x:4x8x20x12"`` or ``{"x": (4, 8, 20, 12)}``; default: the example shapes and, when
    there are dynamic axes, a second shape with every dynamic size changed. Fresh random
    inputs at every shape. ``precision``/``rtol``/``atol``: see
    :mod:`attn_deploy.harness.compare`.
    """
    import torch

    from attn_deploy.deploy.pipeline import output_names_for, validate_model
    from attn_deploy.errors import AttnDeployError
    from attn_deploy.export import export_onnx
    from attn_deploy.harness.compare import tolerance
    from attn_deploy.shapes import alternate_dims, shapes_to_dims

    runtimes, require, named = _select(runtimes, require)
    absent = _precheck(runtimes, require, named)
    example = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
        else tuple(example_inputs)
    if input_names is None:
        input_names = ["input"] if len(example) == 1 else \
            [f"input_{i}" for i in range(len(example))]
    if len(input_names) != len(example):
        raise AttnDeployError(f"input_names: expected {len(example)} names (one per example "
                              f"input), got {list(input_names)}")
    tolerance(precision, rtol)  # a bad precision fails before the export, not after
    model = model.eval()
    output_names = output_names_for(model, example, output_names)
    specs, dims = _input_specs(example, list(input_names), dynamic_axes)
    if shapes:
        sizes = shapes_to_dims(specs, _shape_texts(shapes), "shapes")
    else:
        sizes = [dims, alternate_dims(dims)] if dims else [dims]
    what = type(model).__name__
    with tempfile.TemporaryDirectory(prefix="attn_deploy_parity_") as tmp:
        # the validation below runs the file at a second shape: the export's own run there
        # would only repeat it (and refuse before the table says what differs)
        path = export_onnx(model, example, Path(tmp) / f"{what}.onnx",
                           input_names=list(input_names), output_names=output_names,
                           dynamic_axes=dynamic_axes, second_shape_check=len(sizes) < 2)
        v = validate_model(model, path, specs, output_names, sizes, runtimes=runtimes,
                           precision=precision, rtol=rtol, atol=atol)
    return _judge(v, absent, named, f"{what} ({precision})")


class _CallableModule:
    """Lets a plain function serve where the PyTorch runner expects a module."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, *args):
        return self.fn(*args)


def assert_file_parity(path: str | Path, reference, *, shapes: Shapes | None = None,
                       runtimes: Iterable[str] | None = None, precision: str = "fp32",
                       rtol: float | None = None, atol: float | None = None,
                       require: Iterable[str] | None = None):
    """Assert that ONNX file ``path`` gives ``reference``'s numbers on every runtime.

    ``reference``: golden outputs (a ``.npz`` path written by ``validate --save-outputs`` or
    :func:`attn_deploy.harness.golden.save_outputs`, or a loaded
    :class:`~attn_deploy.harness.golden.GoldenOutputs`: their inputs and shapes are used), or a
    callable (an ``nn.Module`` or a function of torch tensors in the file's input order,
    returning a tensor or a tuple in its output order) run at ``shapes`` on fresh random
    inputs. Returns the :class:`~attn_deploy.harness.Validation`.
    """
    import numpy as np
    import torch

    from attn_deploy.backends import TorchRunner
    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.errors import AttnDeployError
    from attn_deploy.harness.golden import GoldenOutputs, validate_golden
    from attn_deploy.harness.validate import validate_file
    from attn_deploy.onnx_file import read_onnx_file
    from attn_deploy.shapes import parse_shapes

    runtimes, require, named = _select(runtimes, require)
    path = Path(path)
    if isinstance(reference, (str, Path, GoldenOutputs)):
        if shapes:
            raise AttnDeployError("shapes: golden outputs fix the inputs and shapes; leave "
                                  "shapes out")
        absent = _precheck(runtimes, require, named)
        v = validate_golden(path, reference, runtimes=runtimes, precision=precision,
                            rtol=rtol, atol=atol)
        return _judge(v, absent, named, f"{path.name} vs golden outputs {reference}")
    if not callable(reference):
        raise AttnDeployError(f"reference: expected golden outputs (.npz) or a callable, got "
                              f"{type(reference).__name__}")
    if not shapes:
        raise AttnDeployError(f"{path.name}: give shapes=[...] for its inputs to run the "
                              "reference at")
    absent = _precheck(runtimes, require, named)
    proto = read_onnx_file(path, load_weights=False)
    metas = metadata_from_proto(proto)
    dtypes = {n: torch.from_numpy(np.zeros((), m.dtype)).dtype for n, m in metas.items()}
    module = reference if isinstance(reference, torch.nn.Module) else \
        _CallableModule(reference)
    runner = TorchRunner(module, {n: (dtypes[n], m.shape) for n, m in metas.items()},
                         [o.name for o in proto.graph.output])
    v = validate_file(path, shapes=[parse_shapes(t) for t in _shape_texts(shapes)],
                      runtimes=runtimes, precision=precision, reference=runner, rtol=rtol,
                      atol=atol)
    return _judge(v, absent, named, f"{path.name} ({precision})")

