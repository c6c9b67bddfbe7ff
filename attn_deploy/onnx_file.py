"""Reading an ONNX file a user hands to ``validate``, ``trt-check``, ``build-engine`` or
``triton-repo``: every way a file can be unusable becomes one :class:`AttnDeployError` naming the
file and the problem, before any runtime sees it.

    proto = read_onnx_file("net.onnx")               # parsed, checked, weights loaded
    check_runtime_can_run(proto, "net.onnx", "ort-cpu")

Checked: the path is a regular, non-empty file; it parses as an ONNX model with a graph; its IR
version and default-domain opset are ones this onnx release knows; every custom domain is
attn_deploy's or has model-local functions for its nodes; external weights exist next to the file
and are as long as declared; declared input/output dims are neither negative nor absurd. What
only a runtime can judge (a graph it cannot load) is reported by the runners as a one-line
error naming the file. Needs only onnx (the runtime side).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.defs

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import DOMAIN

# Domains runtimes know besides the default one (ONNX-ML, ONNX Runtime's contrib ops).
KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", DOMAIN}
# A declared dim above this is a corrupt or hostile file, not a model (2^31 elements on one axis).
MAX_DECLARED_DIM = 2**31 - 1
# Inputs a validation may generate for one shape set (random data held in memory, twice).
MAX_FEED_BYTES = 4 << 30


def _fail(path, problem: str) -> AttnDeployError:
    return AttnDeployError(f"{path}: {problem}")


def read_onnx_file(path: str | Path, *, load_weights: bool = True) -> onnx.ModelProto:
    """Parse and check ``path`` (see the module docstring); AttnDeployError on any problem."""
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such file")
    if not path.is_file():
        raise _fail(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise _fail(path, "empty file (0 bytes), not an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, or an error of the protobuf runtime
        raise _fail(path, f"not an ONNX model (protobuf parse failed: "
                          f"{type(exc).__name__}: {str(exc)[:200]})") from None
    check_model_proto(proto, path)
    _check_external_data(proto, path)
    if load_weights:
        try:
            onnx.load_external_data_for_model(proto, str(path.parent))
        except Exception as exc:
            raise _fail(path, f"cannot load its external data ({str(exc)[:200]})") from None
    return proto


def check_model_proto(proto: onnx.ModelProto, path) -> None:
    """The structural checks of :func:`read_onnx_file` on a parsed model."""
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise _fail(path, "not an ONNX model (no IR version or no graph: truncated, or another "
                          "kind of file)")
    if proto.ir_version > onnx.IR_VERSION:
        raise _fail(path, f"IR version {proto.ir_version} is newer than this onnx "
                          f"{onnx.__version__} reads (up to {onnx.IR_VERSION})")
    opsets = {o.domain: o.version for o in proto.opset_import}
    default = opsets.get("", opsets.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if default is None:
        raise _fail(path, "imports no default-domain opset")
    if not 1 <= default <= newest:
        raise _fail(path, f"opset {default} is outside 1..{newest}, the opsets onnx "
                          f"{onnx.__version__} knows")
    functions = {(f.domain, f.name) for f in proto.functions}
    for node in proto.graph.node:
        if node.domain not in KNOWN_DOMAINS and (node.domain, node.op_type) not in functions:
            raise _fail(path, f"node {node.name or node.op_type!r} is in unknown domain "
                              f"{node.domain!r} and the model has no local function for it")
    for value in list(proto.graph.input) + list(proto.graph.output):
        for axis, d in enumerate(value.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and not 0 <= d.dim_value <= MAX_DECLARED_DIM:
                raise _fail(path, f"{value.name!r} declares dim {d.dim_value} on axis {axis} "
                                  f"(expected 0..{MAX_DECLARED_DIM} or a symbol)")


def _check_external_data(proto: onnx.ModelProto, path: Path) -> None:
    base = path.parent.resolve()
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or os.path.isabs(location) or base not in target.parents:
            raise _fail(path, f"initializer {tensor.name!r} points outside the model's folder "
                              f"({location!r})")
        if not target.is_file():
            raise _fail(path, f"initializer {tensor.name!r}: external data file {location!r} "
                              f"is missing next to the model")
        need = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        if need > target.stat().st_size:
            raise _fail(path, f"initializer {tensor.name!r}: external data file {location!r} "
                              f"has {target.stat().st_size} bytes, the model needs {need}")


def _graph_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graph_tensors(g)


def _all_tensors(proto: onnx.ModelProto):
    """Every tensor of the model that may hold external data (initializers, constants,
    subgraphs)."""
    yield from _graph_tensors(proto.graph)


def check_runtime_can_run(proto: onnx.ModelProto, path, runtime: str) -> None:
    """A ``tensorrt``-flavor file (attn_deploy nodes without local functions) runs only on
    TensorRT with the plugins; say so before ONNX Runtime fails on an unknown op."""
    if runtime == "tensorrt":
        return
    functions = {(f.domain, f.name) for f in proto.functions}
    bare = sorted({n.op_type for n in proto.graph.node
                   if n.domain == DOMAIN and (n.domain, n.op_type) not in functions})
    if bare:
        raise _fail(path, f"{runtime} cannot run it: its attn_deploy nodes ({', '.join(bare)}) "
                          "have no local functions (the 'tensorrt' export flavor, for TensorRT "
                          "with the plugins); use --runtimes tensorrt, or export the 'default' "
                          "flavor for other runtimes")


def check_feed_size(path, shapes: dict[str, tuple[int, ...]], dtypes: dict[str, object]) -> None:
    """Refuse a shape set whose random inputs would not fit in memory (a typo, or a file whose
    metadata asks for hundreds of GiB)."""
    total = 0
    for name, shape in shapes.items():
        if any(int(d) < 0 for d in shape):
            raise _fail(path, f"input {name!r}: negative dim in shape {tuple(shape)}")
        total += int(np.prod([int(d) for d in shape], dtype=object)) * \
            np.dtype(dtypes.get(name, np.float32)).itemsize
    if total > MAX_FEED_BYTES:
        raise _fail(path, f"inputs of shapes {dict(shapes)} need {total / 2**30:.1f} GiB; the "
                          f"limit is {MAX_FEED_BYTES >> 30} GiB (give smaller --shapes)")
