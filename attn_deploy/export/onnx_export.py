"""Export to ONNX: any model (:func:`export_onnx`) or a registered block (:func:`export_block`).

Uses torch.onnx's dynamo exporter, then proves what it claims: every requested dynamic axis must
still be symbolic in the saved model (the exporter can silently pin a dim it could not keep
dynamic); no dynamic dim was specialised or constrained by a size-dependent branch
(:mod:`attn_deploy.export.shape_guards`); the model passes ``onnx.checker`` with
``full_check``; one output name per model output; and the new file runs on ONNX Runtime at a
second shape with the same numbers as PyTorch (:mod:`attn_deploy.export.second_shape`).

The file is written beside the target and replaces it only once every check passed (temporary
file, then rename), so a failed export never leaves a partial file or clobbers an earlier good
one; a model refused by the checks is kept as ``NAME.failed.onnx`` for inspection.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import onnx
import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.atomic_write import failed_path, promote, staged_file, write_target
from attn_deploy.export.flavors import FLAVORS, apply_flavor, custom_translation_table
from attn_deploy.export.second_shape import (check_second_shape, eager_runs, example_dims,
                                             second_dims, second_shape_inputs)
from attn_deploy.export.shape_guards import DeclaredDim, GuardLog, check_exported_dims
from attn_deploy.shape_record import SHAPES_KEY, ShapeRecord

DEFAULT_OPSET = 18


def _dynamic_shapes(input_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]],
                    example_inputs: Sequence[torch.Tensor],
                    multiples: Mapping[str, int] | None,
                    min_dims: Mapping[str, int] | None,
                    max_dims: Mapping[str, int] | None) -> dict[str, dict[int, Any]]:
    """torch.export dims: one Dim per symbol, shared across inputs; multiples as derived dims."""
    from torch.export import Dim

    multiples, min_dims, max_dims = multiples or {}, min_dims or {}, max_dims or {}
    dims: dict[str, Any] = {}

    def dim(symbol: str):
        if symbol not in dims:
            m = multiples.get(symbol, 1)
            lo = max(1, -(-min_dims.get(symbol, 1) // m))
            hi = max_dims.get(symbol)
            kw = {"min": lo} | ({"max": hi // m} if hi is not None else {})
            base = Dim(symbol if m == 1 else f"_{symbol}_div{m}", **kw)
            dims[symbol] = base if m == 1 else m * base
        return dims[symbol]

    shapes: dict[str, dict[int, Any]] = {}
    for i, name in enumerate(input_names):
        axes = dynamic_axes.get(name, {})
        for axis in axes:
            if not 0 <= axis < example_inputs[i].dim():
                raise AttnDeployError(
                    f"dynamic_axes[{name!r}]: axis {axis} out of range for an input of rank "
                    f"{example_inputs[i].dim()}")
        shapes[name] = {axis: dim(sym) for axis, sym in axes.items()} or None
    return shapes


def _check_dynamic(proto: onnx.ModelProto, dynamic_axes: Mapping[str, Mapping[int, str]]) -> None:
    """Raise if the exporter pinned an axis that was asked to be dynamic; name the axes after
    the caller's symbols (derived dims export as expressions such as ``4*_H_div4``)."""
    by_name = {v.name: v for v in proto.graph.input}
    pinned = []
    for name, axes in dynamic_axes.items():
        if name not in by_name:
            continue
        dims = by_name[name].type.tensor_type.shape.dim
        for axis, symbol in axes.items():
            d = dims[axis]
            if d.HasField("dim_value"):
                pinned.append(f"{name} axis {axis} ({symbol}) = {d.dim_value}")
            else:
                d.dim_param = symbol
    if pinned:
        raise AttnDeployError(
            "the exported model is not dynamic where it was asked to be; the exporter pinned "
            + ", ".join(pinned) + ". Use example sizes other than 0 and 1, and make the model "
            "shape-agnostic along those axes (see DESIGN.md, export pitfalls)")


def _check_dynamic_outputs(proto: onnx.ModelProto, program) -> None:
    """Raise if an output dim that torch traced as symbolic was saved as a fixed size (a
    custom translation that records the example's size would make ONNX Runtime and TensorRT
    allocate the wrong output at other sizes)."""
    ep = getattr(program, "exported_program", None)
    if ep is None:
        return
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    vals = [a.meta.get("val") if hasattr(a, "meta") else None
            for a in torch.utils._pytree.tree_leaves(out_node.args[0])]
    pinned = []
    for vi, val in zip(proto.graph.output, vals):
        if not isinstance(val, torch.Tensor):
            continue
        dims = vi.type.tensor_type.shape.dim
        for axis, (d, sym) in enumerate(zip(dims, val.shape)):
            if isinstance(sym, torch.SymInt) and d.HasField("dim_value"):
                pinned.append(f"{vi.name} axis {axis} = {d.dim_value}")
    if pinned:
        raise AttnDeployError("the exported model records fixed sizes for output dims that "
                              "depend on the input sizes: " + ", ".join(pinned))


def export_onnx(model: nn.Module, example_inputs: Sequence[torch.Tensor] | torch.Tensor,
                path: str | Path, *, input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
                opset: int | None = None, flavor: str = "default",
                multiples: Mapping[str, int] | None = None,
                min_dims: Mapping[str, int] | None = None,
                max_dims: Mapping[str, int] | None = None,
                metadata: Mapping[str, str] | None = None,
                check_inputs: Sequence[torch.Tensor] | None = None,
                second_shape_check: bool = True, rtol: float | None = None,
                keep_failed_as: str | Path | None = None) -> Path:
    """Export ``model`` to ``path`` and return the path.

    ``dynamic_axes``: {input name: {axis: symbol}}; inputs sharing a symbol share the size.
    ``output_names``: one per model output (a different count is refused).
    ``flavor``: "default" (custom nodes with local functions), "tensorrt" (custom nodes bound
    to the TensorRT plugins) or "plain" (standard ops only); only matters for models using
    attn_deploy's ops. ``multiples`` / ``min_dims`` / ``max_dims`` constrain the symbols.

    With dynamic axes the new file is run on ONNX Runtime at a second shape and compared with
    the model (relative L2 ``rtol``, default 1e-5) before it replaces ``path``:
    ``check_inputs`` are the inputs for that run (default: random ones at
    :func:`~attn_deploy.export.second_shape.second_dims` of the example's sizes);
    ``second_shape_check=False`` skips the run, for callers that validate the file at such a
    shape themselves. A refused model is kept as ``keep_failed_as`` (default
    ``NAME.failed.onnx`` beside ``path``) and the error says so.
    """
    path = Path(path)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    input_names, output_names = list(input_names), list(output_names)
    if len(input_names) != len(example_inputs):
        raise AttnDeployError(f"input_names: expected {len(example_inputs)} names (one per "
                              f"example input), got {len(input_names)}: {input_names}")
    if flavor not in FLAVORS:
        raise AttnDeployError(f"flavor: expected one of {list(FLAVORS)}, got {flavor!r}")
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not 18 <= opset <= 23:
        raise AttnDeployError(f"opset: expected 18 to 23 (the exporter has no down-converter "
                              f"below 18 for Pad; TensorRT 10 parses up to 20), got {opset}")
    dynamic_axes = {k: dict(v) for k, v in (dynamic_axes or {}).items()}
    unknown = set(dynamic_axes) - set(input_names)
    if unknown:
        raise AttnDeployError(f"dynamic_axes names {sorted(unknown)}, which are not inputs; "
                              f"inputs are {input_names}")
    if not path.parent.exists():
        raise AttnDeployError(f"output path {str(path)!r}: folder {str(path.parent)!r} "
                              "does not exist")
    write_target(path)  # refuse a folder, FIFO or device at the target before the long export
    keep_failed_as = Path(keep_failed_as) if keep_failed_as is not None else failed_path(path)

    was_training = model.training
    model.eval()
    # in input order, not keyed by name: spec input names need not match forward's parameters
    shapes = _dynamic_shapes(input_names, dynamic_axes, example_inputs, multiples, min_dims,
                             max_dims)
    try:
        with _quiet_exporter(), GuardLog() as guard_log, torch.no_grad():
            program = torch.onnx.export(
                model, example_inputs, None, input_names=input_names,
                output_names=output_names, opset_version=opset, dynamo=True,
                dynamic_shapes=tuple(shapes[n] for n in input_names) if dynamic_axes else None,
                external_data=False, custom_translation_table=custom_translation_table(flavor),
                verbose=False)
    except AttnDeployError:
        raise
    except Exception as exc:  # the exporter raises many types; keep the cause attached
        raise AttnDeployError(f"ONNX export of {type(model).__name__} failed: "
                              f"{type(exc).__name__}: {str(exc)[:2000]}") from exc
    finally:
        model.train(was_training)
    proto = program.model_proto
    _check_output_count(proto, output_names, type(model).__name__)
    _check_dynamic(proto, dynamic_axes)
    _check_dynamic_outputs(proto, program)
    # the tensorrt flavor's plugin nodes do not run on ONNX Runtime; its graph is otherwise the
    # default flavor's, which is the one run at the second shape
    runnable = apply_flavor(onnx.ModelProto.FromString(proto.SerializeToString()), "default") \
        if flavor == "tensorrt" else None
    proto = apply_flavor(proto, flavor)

    from attn_deploy.version import __version__
    meta = {"attn_deploy_version": __version__, "attn_deploy_flavor": flavor,
            **(metadata or {})}
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=str(v))
    proto.producer_name = "attn_deploy"
    proto.producer_version = __version__
    try:
        onnx.checker.check_model(proto, full_check=True)
        data = proto.SerializeToString()
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise AttnDeployError(f"the exported model of {type(model).__name__} is not a valid "
                              f"ONNX model: {str(exc)[:1000]}") from exc

    dims = example_dims(example_inputs, input_names, dynamic_axes)
    declared = {s: DeclaredDim(s, d, (multiples or {}).get(s, 1), (min_dims or {}).get(s, 1),
                               (max_dims or {}).get(s)) for s, d in dims.items()}
    with staged_file(path, suffix=".onnx") as staged:
        staged.write_bytes(data)
        try:
            check_exported_dims(program, input_names, dynamic_axes, declared, guard_log,
                                where=type(model).__name__,
                                runs_at=eager_runs(model, example_inputs, input_names,
                                                   dynamic_axes, dims))
            if dynamic_axes and second_shape_check:
                if check_inputs is None:
                    check_inputs = second_shape_inputs(
                        example_inputs, input_names, dynamic_axes,
                        second_dims(dims, multiples, min_dims, max_dims))
                check_second_shape(model, staged, input_names, output_names,
                                   tuple(check_inputs), rtol, runnable=runnable)
        except AttnDeployError as exc:
            kept = promote(staged, keep_failed_as)
            raise AttnDeployError(f"{exc}\nThe refused model is kept as {kept}; the output "
                                  "file was left as it was.") from exc
        promote(staged, path)
    return path


def _check_output_count(proto: onnx.ModelProto, output_names: Sequence[str],
                        model_name: str) -> None:
    """The exporter names extra outputs itself and silently drops extra names; refuse both."""
    got = [o.name for o in proto.graph.output]
    if len(output_names) != len(got):
        raise AttnDeployError(f"output_names: {len(output_names)} names {list(output_names)} "
                              f"for {model_name}, which returns {len(got)} output(s); give "
                              "exactly one name per output")


def export_block(key: str, path: str | Path, *, model: nn.Module | None = None,
                 opset: int | None = None, flavor: str = "default", static: bool = False,
                 second_shape_check: bool = True, **dims: int) -> Path:
    """Export registered block ``key`` (built with defaults, or ``model``) to ``path``.

    Input/output names and dynamic axes come from the spec; every dim symbol is dynamic unless
    ``static``. ``dims`` set the example sizes (defaults from the spec). The second-shape run
    (see :func:`export_onnx`) uses the block's own example inputs at the spec's second dims.
    """
    from attn_deploy.modules.registry import example_inputs, spec

    config = getattr(model, "attn_deploy_config", {}) if model is not None else {}
    if model is not None and config.get("key", key) != key:
        raise AttnDeployError(f"model was created as block {config['key']!r}, not {key!r}")
    kwargs = config.get("kwargs", {})
    if model is None:
        from attn_deploy.modules.registry import create
        model = create(key)
    s = spec(key, **kwargs)
    inputs = example_inputs(key, seed=0, config=kwargs, **dims)
    check = None
    if not static and second_shape_check:
        alt = second_dims(s.check_dims(dims), s.multiples, s.min_dims, s.max_dims)
        check = example_inputs(key, seed=1, config=kwargs, **alt)
    # two records of the block, for two readers (see attn_deploy/shape_record.py): the block
    # and its arguments for the export side (spec_from_onnx, with PyTorch), its sizes for the
    # runtime side (no PyTorch, no registry)
    meta = {"attn_deploy_block": key,
            "attn_deploy_config": json.dumps(kwargs, sort_keys=True, default=str),
            SHAPES_KEY: ShapeRecord.of_spec(s).to_json()}
    return export_onnx(model, inputs, path, input_names=list(s.inputs),
                       output_names=list(s.outputs),
                       dynamic_axes=None if static else s.dynamic_axes(), opset=opset,
                       flavor=flavor, multiples=s.multiples, min_dims=s.min_dims,
                       max_dims=s.max_dims, metadata=meta, check_inputs=check,
                       second_shape_check=second_shape_check, rtol=s.rtol)


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress and warnings meant for its own debugging."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx.experimental.symbolic_shapes",
                                              "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
