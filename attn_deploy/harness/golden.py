"""Golden outputs: the inputs and reference outputs of a validation, saved to compare a later
file, runtime, TensorRT version or plugin build against (after Polygraphy's
``--save-outputs`` / ``--load-outputs``), so that drift between releases fails CI.

The file is a NumPy ``.npz`` archive (``numpy.load(path)`` reads it, no pickle):

- ``meta``: a 0-d string array holding JSON: ``format`` ("attn_deploy.golden"),
  ``format_version`` (1), ``name`` (block key or file name), ``reference`` (the runtime whose
  outputs were saved: ``torch-cpu`` for a block or a PyTorch model, ``ort-cpu`` for an ONNX
  file), ``versions`` (attn_deploy, Python, torch, onnx, onnxruntime, tensorrt; null when
  absent), ``created`` (UTC, ISO 8601) and ``cases``: one entry per shape,
  ``{"shapes": "x:2x8x6x6", "inputs": [names], "outputs": [names]}``.
- ``case{i}.input{j}`` / ``case{i}.output{j}``: the arrays of case ``i``, in the order of the
  names in ``meta.cases[i]`` (ONNX names may hold any character, so they are not used as keys).
"""
from __future__ import annotations

import datetime
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from attn_deploy.errors import AttnDeployError

FORMAT = "attn_deploy.golden"
FORMAT_VERSION = 1
# (shapes label, {input name: array}, {output name: array})
Case = tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]


@dataclass
class GoldenOutputs:
    """Saved inputs and reference outputs, one case per shape."""

    cases: list[Case]
    meta: dict = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        return list(self.cases[0][1]) if self.cases else []


def save_outputs(path: str | Path, cases: Sequence[Case], *, name: str,
                 reference: str) -> Path:
    """Write ``cases`` (e.g. ``Validation.cases``) to ``path`` atomically; returns the path."""
    from attn_deploy.atomic_write import atomic_write_bytes
    from attn_deploy.harness.versions import tool_versions

    if not cases:
        raise AttnDeployError(f"save outputs to {str(path)!r}: nothing to save (the "
                              "validation ran no shape)")
    arrays: dict[str, np.ndarray] = {}
    entries = []
    for i, (label, feed, outputs) in enumerate(cases):
        entries.append({"shapes": label, "inputs": list(feed), "outputs": list(outputs)})
        arrays.update({f"case{i}.input{j}": np.asarray(a) for j, a in enumerate(feed.values())})
        arrays.update({f"case{i}.output{j}": np.asarray(a)
                       for j, a in enumerate(outputs.values())})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "reference": reference, "versions": tool_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cases": entries}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_outputs(path: str | Path) -> GoldenOutputs:
    """Read a file written by :func:`save_outputs` (or ``validate --save-outputs``)."""
    path = Path(path)
    if not path.is_file():
        raise AttnDeployError(f"golden outputs {str(path)!r}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT:
                raise AttnDeployError(f"golden outputs {str(path)!r}: format "
                                      f"{meta.get('format')!r}, expected {FORMAT!r}")
            if meta.get("format_version") != FORMAT_VERSION:
                raise AttnDeployError(f"golden outputs {str(path)!r}: format version "
                                      f"{meta.get('format_version')!r}; this attn_deploy "
                                      f"reads version {FORMAT_VERSION}")
            cases = [(c["shapes"],
                      {n: npz[f"case{i}.input{j}"] for j, n in enumerate(c["inputs"])},
                      {n: npz[f"case{i}.output{j}"] for j, n in enumerate(c["outputs"])})
                     for i, c in enumerate(meta["cases"])]
    except AttnDeployError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise AttnDeployError(f"golden outputs {str(path)!r}: not an attn_deploy golden "
                              f"outputs file (.npz written by --save-outputs): "
                              f"{type(exc).__name__}: {exc}") from exc
    if not cases:
        raise AttnDeployError(f"golden outputs {str(path)!r}: holds no case")
    return GoldenOutputs(cases, meta)


def check_inputs(golden: GoldenOutputs, inputs: Iterable[str], what: str) -> None:
    """Refuse golden outputs saved for inputs other than ``inputs`` (of ``what``)."""
    inputs = list(inputs)
    if sorted(inputs) != sorted(golden.input_names):
        raise AttnDeployError(f"{what}: inputs {inputs} differ from the golden outputs' "
                              f"inputs {golden.input_names} (saved from "
                              f"{golden.meta.get('name')!r})")


def validate_golden(path: str | Path, golden: GoldenOutputs | str | Path, *,
                    runtimes: Iterable[str] | None = None, precision: str = "fp32",
                    rtol: float | None = None, atol: float | None = None,
                    progress=None):
    """Run ONNX file ``path`` on ``runtimes`` with the golden inputs and compare every output
    with the golden outputs. Returns a :class:`~attn_deploy.harness.validate.Validation`."""
    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.harness.validate import (Validation, check_runtimes, graph_summary,
                                              run_runtimes)
    from attn_deploy.onnx_file import read_onnx_file

    if not isinstance(golden, GoldenOutputs):
        golden = load_outputs(golden)
    path = Path(path)
    proto = read_onnx_file(path, load_weights=False)  # a clear error for a broken file
    runtimes = check_runtimes(runtimes)
    check_inputs(golden, metadata_from_proto(proto), path.name)
    v = Validation(path.name, str(path), export_ok=True)
    v.node_count, v.custom_nodes = graph_summary(path)
    run_runtimes(v, path, runtimes, golden.cases, precision, rtol, progress, atol=atol)
    return v
