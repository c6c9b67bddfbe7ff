"""Build a TensorRT engine from an ONNX file, with the plugins, a profile and an engine cache.

    build = build_engine("carafe.onnx", precision="fp16")
    build.path, build.cached, build.seconds

- Plugins: a model with ``attn_deploy`` nodes gets ``libattn_deploy_plugins.so`` loaded first
  through TensorRT's own loader (``plugin_library``, else found by
  ``plugin_library.plugin_library_path``); every plugin its nodes need must then be in TensorRT's
  registry, or the error names the missing ones. With the library loaded, every attn_deploy node
  is bound to its plugin in memory, whatever the file's flavor and the TensorRT version (local
  functions removed, ``plugin_namespace`` set: the ``tensorrt`` flavor). Without it, nodes that
  carry their model-local function (``default`` flavor) run as that function.
- Device: ``device`` is made current before building, so the engine and its cache key are for
  that GPU; the runner runs on the same device.
- Precision: fp32 builds with TF32 off (fp32 parity is 1e-5). fp16 on TensorRT 10 sets the
  builder's FP16 flag on the float32 model; TensorRT 11 has no such flag (networks are strongly
  typed), so the model is converted to float16 first (``fp16_model``).
- Profile: from the block spec in the model's metadata or from ``min/opt/max`` (``profiles``).
- Cache: engines keyed by model, TensorRT version, GPU, precision, profile, plugin library and
  settings (``engine_cache``), verified on every read; one timing cache per TensorRT version, GPU
  and plugin library speeds up rebuilds.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from attn_deploy.backends.tensorrt import plugin_library as plugins
from attn_deploy.backends.tensorrt.cuda_runtime import cuda_runtime
from attn_deploy.backends.tensorrt.engine_cache import EngineCache, EngineKey, file_digest
from attn_deploy.backends.tensorrt.fp16_model import convert_to_fp16, is_fp16_model
from attn_deploy.backends.tensorrt.profiles import Profile, describe_profile, profile_for_model
from attn_deploy.backends.tensorrt.runtime_env import (gpu_identity, import_tensorrt,
                                                       tensorrt_major, tensorrt_version)
from attn_deploy.errors import AttnDeployError
from attn_deploy.export.flavors import apply_flavor, custom_nodes
from attn_deploy.op_contract import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION

PRECISIONS = ("fp32", "fp16")
DEFAULT_WORKSPACE_MB = 4096


@dataclass
class EngineBuild:
    path: Path
    cached: bool
    seconds: float
    precision: str
    profile: Profile
    tensorrt: str
    plugin_library: Path | None
    notes: list[str] = field(default_factory=list)


def plugin_ops(proto: onnx.ModelProto) -> list[tuple[str, str, str, bool]]:
    """(op, version, namespace, has_local_function) of the model's attn_deploy nodes."""
    functions = {(f.domain, f.name) for f in proto.functions}
    ops = {}
    for node in proto.graph.node:
        if node.domain != DOMAIN:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        version = attrs.get("plugin_version", PLUGIN_VERSION)
        namespace = attrs.get("plugin_namespace", PLUGIN_NAMESPACE)
        version = version.decode() if isinstance(version, bytes) else version
        namespace = namespace.decode() if isinstance(namespace, bytes) else namespace
        ops[(node.op_type, version, namespace)] = (node.domain, node.op_type) in functions
    return [(*k, v) for k, v in ops.items()]


_LOGGER = None


def collecting_logger(trt):
    """The process's TensorRT logger: prints warnings and keeps recent errors for exception
    messages. One object for the whole process, because TensorRT keeps the pointers it is given
    (the standard plugins' logger lives as long as the process)."""
    global _LOGGER
    if _LOGGER is None:
        class CollectingLogger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.errors: list[str] = []

            def log(self, severity, msg):
                if int(severity) <= int(trt.ILogger.Severity.ERROR):
                    self.errors = self.errors[-50:] + [str(msg)]
                if int(severity) <= int(trt.ILogger.Severity.WARNING):
                    print(f"[TensorRT] {msg}", file=sys.stderr)

        _LOGGER = CollectingLogger()
        trt.init_libnvinfer_plugins(_LOGGER, "")
    return _LOGGER


def build_engine(onnx_path: str | Path, *, precision: str = "fp32",
                 min_shapes=None, opt_shapes=None, max_shapes=None,
                 workspace_mb: int | None = None, cache_dir: str | Path | None = None,
                 plugin_library: str | Path | None = None, use_cache: bool = True,
                 device: int = 0) -> EngineBuild:
    """Build (or fetch from the cache) an engine for ``onnx_path``; see the module docstring."""
    if precision not in PRECISIONS:
        raise AttnDeployError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    from attn_deploy.onnx_file import read_onnx_file

    onnx_path = Path(onnx_path)
    proto = read_onnx_file(onnx_path)
    trt = import_tensorrt()
    start = time.perf_counter()
    notes: list[str] = []
    fp16_flag = hasattr(trt.BuilderFlag, "FP16")
    if is_fp16_model(proto) and precision == "fp32":
        raise AttnDeployError(f"{onnx_path.name} has float16 inputs: build it with precision "
                              "'fp16' (strongly typed networks keep the model's types)")
    if precision == "fp16" and not fp16_flag and not is_fp16_model(proto):
        proto = convert_to_fp16(proto)
        notes.append(f"TensorRT {tensorrt_version(trt)} is strongly typed: built from a float16 "
                     "copy of the model")
    profile = profile_for_model(proto, min_shapes=min_shapes, opt_shapes=opt_shapes,
                                max_shapes=max_shapes)

    logger = collecting_logger(trt)
    logger.errors.clear()
    cuda = cuda_runtime()
    cuda.set_device(device)  # the builder and the engine belong to the current device
    ops = plugin_ops(proto)
    library = None
    if ops or plugin_library is not None:
        library = plugins.resolve_library(plugin_library) if plugin_library is not None else \
            plugins.plugin_library_path(required=not all(f for *_, f in ops))
        if library is not None:
            plugins.load_plugin_library(library, trt)
            plugins.require_plugins(trt, [op[:3] for op in ops], library)
            if ops:
                # Bind every attn_deploy node to its plugin whatever the file's flavor: without
                # its local function and with plugin_namespace set, each TensorRT version's parser
                # takes the plugin (trt_check.plugin_binding has the per-version rules).
                proto = apply_flavor(proto, "tensorrt")
                notes.append(f"{len(custom_nodes(proto))} attn_deploy node(s) bound to the "
                             f"plugins of {library.name}")
        else:
            notes.append("plugin library not found: attn_deploy nodes run as their model-local "
                         "functions (standard ONNX ops), not as the plugins")

    model_bytes = proto.SerializeToString()
    workspace = workspace_mb or DEFAULT_WORKSPACE_MB
    plugin_sha = file_digest(library) if library is not None and library.is_file() else ""
    key = EngineKey(
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        tensorrt=tensorrt_version(trt), gpu=gpu_identity(device), precision=precision,
        profile=describe_profile(profile), plugin_sha256=plugin_sha,
        settings=f"workspace={workspace}MB;tf32=off;fp16_flag={fp16_flag and precision == 'fp16'}")
    cache = EngineCache(cache_dir)
    path = cache.engine_path(onnx_path.stem, key)
    if use_cache:
        cached, why = cache.verified_engine(path, key)
        if cached is not None:
            return EngineBuild(path, True, time.perf_counter() - start, precision, profile,
                               key.tensorrt, library, notes)
        if why:
            notes.append(f"{why}: rebuilding it")
    timing_path = cache.timing_cache_path(key.tensorrt, key.gpu, plugin_sha)
    engine, timing = _build(trt, logger, proto, model_bytes, onnx_path, precision, profile,
                            workspace, cache.load(timing_path))
    cache.store_timing_cache(timing_path, timing)
    cache.store(path, engine, key)
    return EngineBuild(path, False, time.perf_counter() - start, precision, profile,
                       key.tensorrt, library, notes)


def _build(trt, logger, proto, model_bytes: bytes, onnx_path: Path, precision: str,
           profile: Profile, workspace_mb: int, timing_cache: bytes | None) -> tuple[bytes, bytes]:
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: weakly typed; 11: always strongly typed
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model_bytes, str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            e = parser.get_error(i)
            errors.append(f"node {e.node()} ({e.node_name()}, {e.node_operator()}): {e.desc()}")
        raise AttnDeployError(f"TensorRT {trt.__version__} could not parse {onnx_path.name}: "
                              + "; ".join(errors or logger.errors or ["no details"]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if precision == "fp16" and hasattr(trt.BuilderFlag, "FP16"):
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(timing_cache or b"")
    config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise AttnDeployError(f"TensorRT {trt.__version__} failed to build an engine for "
                              f"{onnx_path.name} ({precision}, {describe_profile(profile)}): "
                              + "; ".join(logger.errors or ["no details"]))
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


def tensorrt_is_strongly_typed() -> bool:
    """Whether the installed TensorRT builds strongly typed networks only (11 and later)."""
    return tensorrt_major(import_tensorrt()) >= 11
