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
a server polling the repository never sees a half-written model. A kill between the two renames
of an overwrite leaves the served model in a hidden ``.NAME~old~*`` folder; the next call for
NAME puts it back (or removes it when NAME is in place) and says so.

Names from the ONNX file end up in ``config.pbtxt``: every tensor and model name is checked
against :data:`SAFE_NAME` first (a quote or a newline could otherwise add fields such as
``backend: "python"``). When tritonclient is installed the config is built through Triton's own
``ModelConfig`` protobuf (``model_config_pb2``) and ``google.protobuf.text_format``; otherwise it
is written by hand from the same checked names. An ONNX model is loaded once by ONNX Runtime
(CPU) before anything is written; a ``--plan`` is refused when empty or an ONNX file, but the
plan itself is not checked (that needs TensorRT), which the notes say.
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
# Tensor and model names written into config.pbtxt: what Triton's own models use. No quotes,
# backslashes, whitespace or control characters: those could close the string and add fields.
SAFE_NAME = re.compile(r"[A-Za-z0-9_.:/-]+")
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"),
             "tensorrt": ("tensorrt_plan", "model.plan")}


@dataclass(frozen=True)
class TensorIO:
    name: str
    data_type: str
    dims: tuple[int, ...]     # -1 for a dynamic axis


def _unsafe_chars(text: str) -> str:
    """The characters of ``text`` outside :data:`SAFE_NAME`, as repr()s, for a message."""
    return ", ".join(sorted({repr(c) for c in text if not SAFE_NAME.fullmatch(c)}))


def _check_name(name: str, where: str) -> None:
    if not name or not SAFE_NAME.fullmatch(name):
        seen = f"characters {_unsafe_chars(name)}" if name else "an empty name"
        raise AttnDeployError(
            f"{where} {name!r}: a name written into config.pbtxt may use letters, digits, "
            f"'_', '-', '.', ':' and '/'; got {seen}. Rename it at export (--output-names, "
            "or the input specs)")


def _tensor_io(value: onnx.ValueInfoProto, where: str) -> TensorIO:
    _check_name(value.name, where)
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
    """config.pbtxt for the model (Triton's ModelConfig in protobuf text format): built through
    tritonclient's ModelConfig message when installed, by hand otherwise. Names are checked
    against :data:`SAFE_NAME` either way."""
    _check_name(name, "model name")
    for t in inputs + outputs:
        _check_name(t.name, "tensor")
    for h in header or []:
        if any(c in h for c in "\n\r\x00"):
            raise AttnDeployError(f"config header line {h!r}: contains a line break")
    comments = [f"# {h}" if h else "#" for h in header or []]
    message = model_config_proto()
    if message is not None:
        body = _config_message(message, name, platform, inputs, outputs, max_batch_size)
        return "\n".join(comments + [body.rstrip("\n")]) + "\n"
    return _config_by_hand(comments, name, platform, inputs, outputs, max_batch_size)


def _config_message(message, name: str, platform: str, inputs: list[TensorIO],
                    outputs: list[TensorIO], max_batch_size: int) -> str:
    from google.protobuf import text_format

    config = message(name=name, platform=PLATFORMS[platform][0], max_batch_size=max_batch_size)
    for field, tensors in ((config.input, inputs), (config.output, outputs)):
        for t in tensors:
            entry = field.add(name=t.name, data_type=t.data_type)  # enum set by its name
            entry.dims.extend(t.dims[1:] if max_batch_size > 0 else t.dims)
    if max_batch_size > 0:
        config.dynamic_batching.SetInParent()
    if platform == "tensorrt":
        config.instance_group.add(kind="KIND_GPU", count=1)
    return text_format.MessageToString(config)


def _config_by_hand(comments: list[str], name: str, platform: str, inputs: list[TensorIO],
                    outputs: list[TensorIO], max_batch_size: int) -> str:
    lines = list(comments)
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


def _check_ort_loads(onnx_path: Path) -> None:
    """AttnDeployError (one line, naming the file) if ONNX Runtime cannot load the model."""
    from attn_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(onnx_path, "cpu", threads=1)
    ok, why = runner.availability()
    if not ok:
        raise AttnDeployError(f"{onnx_path}: cannot check that ONNX Runtime loads it: {why}")
    runner._activate()  # raises the one-line AttnDeployError
    runner._deactivate()


def _check_plan(plan: Path, notes: list[str]) -> None:
    if not plan.is_file():
        raise AttnDeployError(f"TensorRT plan {str(plan)!r} does not exist")
    size = plan.stat().st_size
    if size == 0:
        raise AttnDeployError(f"TensorRT plan {str(plan)!r} is empty (0 bytes)")
    with open(plan, "rb") as f:
        head = f.read(1)
    if head == b"\x08":  # an ONNX file starts with field 1 (ir_version), a varint
        try:
            proto = onnx.load(str(plan), load_external_data=False)
        except Exception:  # not protobuf: not ONNX
            proto = None
        if proto is not None and proto.ir_version > 0 and proto.graph.node:
            raise AttnDeployError(
                f"TensorRT plan {str(plan)!r} is an ONNX file, not a serialized engine; build "
                "the plan with build-engine first (or serve the ONNX file without --plan)")
    notes.append(f"the plan {plan.name} itself was not checked (TensorRT is needed for that): "
                 "build it with the TensorRT version of the serving container")


def recover_interrupted(repo: Path, name: str, notes: list[str]) -> None:
    """Finish what a killed overwrite of ``repo/name`` left: the served model moved to a hidden
    ``.name~old~*`` folder (put back when ``repo/name`` is missing, else removed) and staging
    folders ``.name~new~*`` (removed). Each step is added to ``notes``."""
    target = repo / name
    for leftover in sorted(repo.glob(f".{name}~old~*")):
        moved = leftover / name
        if moved.is_dir() and not target.exists():
            os.replace(moved, target)
            notes.append(f"restored {target} from {leftover.name}, left by an interrupted "
                         "--overwrite")
        else:
            notes.append(f"removed {leftover.name}, left by an interrupted --overwrite "
                         f"({name} is in place)")
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in sorted(repo.glob(f".{name}~new~*")):
        shutil.rmtree(leftover, ignore_errors=True)
        notes.append(f"removed {leftover.name}, an unfinished copy left by an interrupted run")


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
                      overwrite: bool = False, notes: list[str] | None = None) -> Path:
    """Write ``repo/<name>/`` (config.pbtxt and ``<version>/model.onnx`` or ``model.plan``) and
    return its path. ``name`` defaults to the file's stem. What the user should know (the plan
    was not checked, an interrupted overwrite was recovered) is appended to ``notes``."""
    from attn_deploy.onnx_file import read_onnx_file

    notes = [] if notes is None else notes

    onnx_path, repo = Path(onnx_path), Path(repo)
    read_onnx_file(onnx_path, load_weights=False)  # a clear error before anything is written
    if plan is not None:
        _check_plan(Path(plan), notes)
    if not repo.is_dir():
        raise AttnDeployError(f"model repository folder {str(repo)!r} does not exist")
    name = name or onnx_path.stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):  # a folder name
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
    if platform == "onnxruntime":
        _check_ort_loads(onnx_path)
    if plugin_library is not None and (not plugin_library or '"' in plugin_library
                                       or any(ord(c) < 32 for c in plugin_library)):
        raise AttnDeployError(f"plugin library path {plugin_library!r}: expected a path without "
                              "quotes or control characters")
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
    recover_interrupted(repo, name, notes)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise AttnDeployError(f"{str(target)!r} exists and is not a model folder (a "
                              f"{'symlink' if target.is_symlink() else 'file or device'}); "
                              "attn-deploy only replaces a folder it wrote. Remove it or "
                              "choose another --name")
    if target.exists() and not overwrite:
        raise AttnDeployError(f"{str(target)!r} exists; pass overwrite=True (--overwrite) to "
                              "replace it")
    # '~' is not allowed in model names: these folders belong to NAME and no other model.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}~new~", dir=repo))
    old = None
    try:
        (staging / str(version)).mkdir()
        shutil.copyfile(plan if plan is not None else onnx_path,
                        staging / str(version) / PLATFORMS[platform][1])
        (staging / "config.pbtxt").write_text(text, encoding="utf-8")
        os.chmod(staging, 0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}~old~", dir=repo))
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
