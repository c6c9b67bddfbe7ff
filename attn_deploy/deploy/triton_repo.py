"""A Triton Inference Server model repository for an exported model.

    write_triton_repo("ccnet.onnx", "models")                        # ONNX Runtime backend
    write_triton_repo("ccnet.onnx", "models", plan="ccnet.engine")   # TensorRT plan

writes ``models/<name>/config.pbtxt`` and ``models/<name>/1/model.onnx`` (or ``model.plan``).
Inputs and outputs (names, data types, dims with -1 for dynamic axes) come from the ONNX file;
for a plan, from the ONNX file it was built from.

Batching: ``max_batch_size = 0`` (the default) declares full shapes, batch axis included, so
any model works, whatever its axis 0 is. ``max_batch_size > 0`` lets Triton batch requests
(``dynamic_batching`` on): every input and output must then have a dynamic axis 0, which is
stripped from the declared dims, as Triton requires.

A model using attn_deploy's custom nodes runs on the ONNX Runtime backend through the nodes'
local functions (export flavor "default"); as a TensorRT plan it needs the plugin library in the
server process, which the config's header comment and the CLI spell out (``LD_PRELOAD`` or
``--backend-config=tensorrt,plugins=<lib>``).

The repository is assembled in a temporary folder next to the target and renamed into place, so
a server polling the repository never sees a half-written model. ``config.pbtxt`` is parsed with
Triton's own ``ModelConfig`` protobuf (``tritonclient``'s ``model_config_pb2``) when tritonclient
is installed; otherwise only the structural checks here run.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from attn_deploy.errors import AttnDeployError
from attn_deploy.op_contract import DOMAIN

_TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64", onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.INT8: "TYPE_INT8", onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.STRING: "TYPE_STRING",
}
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"),
             "tensorrt": ("tensorrt_plan", "model.plan")}


@dataclass(frozen=True)
class TensorIO:
    name: str
    data_type: str
    dims: tuple[int, ...]     # -1 for a dynamic axis


def _tensor_io(value: onnx.ValueInfoProto, where: str) -> TensorIO:
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type") or t.elem_type not in _TRITON_TYPES:
        kind = onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type else "unknown"
        raise AttnDeployError(f"{where} {value.name!r}: element type {kind} has no Triton "
                              "data type")
    if not t.HasField("shape"):
        raise AttnDeployError(f"{where} {value.name!r}: the ONNX file gives no shape (rank); "
                              "Triton needs the dims")
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return TensorIO(value.name, _TRITON_TYPES[t.elem_type], dims)


def model_io(proto: onnx.ModelProto) -> tuple[list[TensorIO], list[TensorIO]]:
    """(inputs, outputs) of an ONNX model, initializers excluded."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = [_tensor_io(v, "input") for v in proto.graph.input if v.name not in inits]
    outputs = [_tensor_io(v, "output") for v in proto.graph.output]
    return inputs, outputs


def _custom_nodes(proto: onnx.ModelProto) -> tuple[set[str], bool]:
    """(custom op types of the main graph, whether each has a model-local function)."""
    ops = {n.op_type for n in proto.graph.node if n.domain == DOMAIN}
    functions = {f.name for f in proto.functions if f.domain == DOMAIN}
    return ops, ops <= functions


def _dims_text(dims: tuple[int, ...]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def config_text(name: str, platform: str, inputs: list[TensorIO], outputs: list[TensorIO],
                max_batch_size: int = 0, header: list[str] | None = None) -> str:
    """config.pbtxt for the model (Triton's ModelConfig in protobuf text format)."""
    lines = [f"# {h}" if h else "#" for h in header or []]
    lines += [f'name: "{name}"', f'platform: "{PLATFORMS[platform][0]}"',
              f"max_batch_size: {max_batch_size}"]
    for kind, tensors in (("input", inputs), ("output", outputs)):
        lines.append(f"{kind} [")
        body = []
        for t in tensors:
            dims = t.dims[1:] if max_batch_size > 0 else t.dims
            body.append(f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n'
                        f"    dims: {_dims_text(dims)}\n  }}")
        lines.append(",\n".join(body))
        lines.append("]")
    if max_batch_size > 0:
        lines.append("dynamic_batching { }")
    if platform == "tensorrt":
        lines.append("instance_group [ { kind: KIND_GPU, count: 1 } ]")
    return "\n".join(lines) + "\n"


def _check_batching(inputs: list[TensorIO], outputs: list[TensorIO], proto: onnx.ModelProto,
                    max_batch_size: int) -> None:
    if max_batch_size < 0:
        raise AttnDeployError(f"max_batch_size: expected >= 0, got {max_batch_size}")
    if max_batch_size == 0:
        return
    fixed = [t.name for t in inputs + outputs if not t.dims or t.dims[0] != -1]
    if fixed:
        raise AttnDeployError(
            f"max_batch_size {max_batch_size} > 0 needs a dynamic axis 0 (the batch) on every "
            f"input and output; {fixed} have none. Export with a dynamic batch (e.g. --dynamic "
            "x:0=N) or use max_batch_size 0 (full shapes)")
    params = {v.type.tensor_type.shape.dim[0].dim_param for v in proto.graph.input
              if v.name in {t.name for t in inputs}}
    if len(params) > 1:
        raise AttnDeployError(f"max_batch_size > 0: the inputs' axis 0 are different symbols "
                              f"{sorted(params)}; Triton batches all inputs along one axis")


def _structural_check(text: str, inputs: list[TensorIO], outputs: list[TensorIO]) -> None:
    names = [t.name for t in inputs + outputs]
    if len(set(names)) != len(names):
        raise AttnDeployError(f"tensor names must be unique across inputs and outputs: {names}")
    if not inputs or not outputs:
        raise AttnDeployError("the model needs at least one input and one output")
    if not re.search(r'^platform: "(onnxruntime_onnx|tensorrt_plan)"$', text, re.M):
        raise AssertionError("config without a platform")


def model_config_proto():
    """Triton's ``ModelConfig`` message class from tritonclient's model_config_pb2, or None.

    The module is loaded from its file: importing ``tritonclient.grpc`` itself would pull in
    grpcio, which parsing a config does not need."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "grpc" / "model_config_pb2.py"
        if path.is_file():
            mod_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
            module = importlib.util.module_from_spec(mod_spec)
            try:
                mod_spec.loader.exec_module(module)
            except Exception:  # a protobuf runtime the generated code refuses
                return None
            return module.ModelConfig
    return None


def check_config(text: str):
    """Parse ``text`` into Triton's ModelConfig (AttnDeployError if it does not parse); None
    when tritonclient is not installed."""
    message = model_config_proto()
    if message is None:
        return None
    from google.protobuf import text_format
    try:
        return text_format.Parse(text, message())
    except text_format.ParseError as exc:
        raise AttnDeployError(f"config.pbtxt does not match Triton's ModelConfig: {exc}") from exc


def write_triton_repo(onnx_path: str | Path, repo: str | Path, *, name: str | None = None,
                      plan: str | Path | None = None, max_batch_size: int = 0,
                      version: int = 1, plugin_library: str | None = None,
                      overwrite: bool = False) -> Path:
    """Write ``repo/<name>/`` (config.pbtxt and ``<version>/model.onnx`` or ``model.plan``) and
    return its path. ``name`` defaults to the file's stem."""
    from attn_deploy.onnx_file import read_onnx_file

    onnx_path, repo = Path(onnx_path), Path(repo)
    read_onnx_file(onnx_path, load_weights=False)  # a clear error before anything is written
    if plan is not None and not Path(plan).is_file():
        raise AttnDeployError(f"TensorRT plan {str(plan)!r} does not exist")
    if not repo.is_dir():
        raise AttnDeployError(f"model repository folder {str(repo)!r} does not exist")
    name = name or onnx_path.stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise AttnDeployError(f"model name {name!r}: use letters, digits, '_', '-' and '.'")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AttnDeployError(f"version: expected an integer >= 1, got {version!r}")
    proto = onnx.load(str(onnx_path), load_external_data=False)
    if any(onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer):
        raise AttnDeployError(f"{onnx_path.name} keeps weights in external data files; "
                              "export it as one file")
    inputs, outputs = model_io(proto)
    _check_batching(inputs, outputs, proto, max_batch_size)
    platform = "tensorrt" if plan is not None else "onnxruntime"
    ops, have_functions = _custom_nodes(proto)
    header = [f"Triton model configuration written by attn-deploy for {onnx_path.name}."]
    if platform == "onnxruntime" and not have_functions:
        raise AttnDeployError(
            f"{onnx_path.name} has attn_deploy custom nodes {sorted(ops)} without their local "
            "functions (the tensorrt export flavor): ONNX Runtime cannot run it. Export with "
            "--flavor default, or serve a TensorRT plan (--plan)")
    if platform == "tensorrt" and ops:
        # Triton only dlopens plugin libraries: the companion that registers when loaded.
        lib = plugin_library or "/opt/attn_deploy/lib/libattn_deploy_plugins_static.so"
        header += ["", "This plan uses the attn_deploy TensorRT plugins "
                       f"({', '.join(sorted(ops))}).",
                   "Load libattn_deploy_plugins_static.so (it registers the plugins of",
                   "libattn_deploy_plugins.so beside it when loaded) into the server, one of:",
                   f"  LD_PRELOAD={lib} tritonserver --model-repository=<repo>",
                   "  tritonserver --model-repository=<repo> "
                   f'--backend-config=tensorrt,plugins="{lib}"',
                   "Build the plan with the TensorRT version of the serving container."]
    text = config_text(name, platform, inputs, outputs, max_batch_size, header)
    _structural_check(text, inputs, outputs)
    check_config(text)
    target = repo / name
    if target.exists() and not overwrite:
        raise AttnDeployError(f"{str(target)!r} exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))
    old = None
    try:
        (staging / str(version)).mkdir()
        shutil.copyfile(plan if plan is not None else onnx_path,
                        staging / str(version) / PLATFORMS[platform][1])
        (staging / "config.pbtxt").write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=repo))
            os.replace(target, old / name)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not target.exists():  # put the served model back
            os.replace(old / name, target)
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            raise AttnDeployError(f"cannot write the model repository {str(target)!r}: "
                                  f"{exc}") from exc
        raise
    return target
