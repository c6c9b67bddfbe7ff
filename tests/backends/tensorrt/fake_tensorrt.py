"""A stand-in for the ``tensorrt`` Python module, with the API surface engine_builder uses (names
as in TensorRT's Python bindings, python/src/infer/pyCore.cpp and parsers/pyOnnx.cpp of 10.3 and
11.x). It records what the builder asked for, so the tests check the control flow (precision
handling per TensorRT major, profiles, parser flags, cache) where TensorRT is absent. It proves
nothing about TensorRT itself: test_tensorrt_engine.py does, where TensorRT exists.

Versions: ``make("10.3")``, ``"10.7"``, ``"10.10"``, ``"10.15"``, ``"11.1"`` (or a major, 10 -> 10.3,
11 -> 11.1). The fake parser states, independently of attn_deploy's trt_check.plugin_binding,
what each version's ONNX parser does with an attn_deploy node (from TensorRT's release notes):
before 10.7 a node with a model-local function is imported as the function; 10.7-10.14 prefer a
registered plugin; 10.15+ take the plugin for such a node only when it has plugin_namespace; the
plugin is looked up in the plugin_namespace attribute's namespace, or (10.10+) the node's domain.
``trt.calls["imported"]`` records, per parse, the node -> "plugin" / "function" choices."""
from __future__ import annotations

import enum
import types

import onnx


def _version(version) -> tuple[int, int]:
    if isinstance(version, int):
        return (10, 3) if version == 10 else (version, 1)
    major, minor = str(version).split(".")[:2]
    return int(major), int(minor)


def make(version, parse_ok: bool = True):
    major, minor = _version(version)
    trt = types.ModuleType("tensorrt")
    trt.__version__ = f"{major}.{minor}.0"
    trt.calls = {"parsed": [], "flags": set(), "cleared": set(), "shapes": {}, "parser_flags": set(),
                 "builds": 0, "registry_loads": [], "imported": []}
    flags = ["TF32"] + (["FP16"] if major == 10 else [])
    trt.BuilderFlag = enum.Enum("BuilderFlag", flags)
    trt.OnnxParserFlag = enum.Enum("OnnxParserFlag", ["NATIVE_INSTANCENORM"] +
                                   (["ENABLE_PLUGIN_OVERRIDE"] if major >= 11 else []))
    trt.MemoryPoolType = enum.Enum("MemoryPoolType", ["WORKSPACE"])

    class ILogger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass
    trt.ILogger = ILogger
    trt.init_libnvinfer_plugins = lambda logger, namespace: True
    registry = types.SimpleNamespace(all_creators=[], load_library=lambda p: trt.calls[
        "registry_loads"].append(p) or object())
    trt.get_plugin_registry = lambda: registry

    class Error:
        def node(self): return 3
        def node_name(self): return "bad_node"
        def node_operator(self): return "Foo"
        def desc(self): return "No importer registered for op: Foo"

    def registered(name, namespace):
        return any((c.name, c.plugin_namespace) == (name, namespace)
                   for c in trt.get_plugin_registry().all_creators)

    def import_custom_node(node, functions) -> str:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        namespace = attrs.get("plugin_namespace")
        namespace = namespace.decode() if isinstance(namespace, bytes) else namespace
        if namespace is None:
            namespace = node.domain if (major, minor) >= (10, 10) else ""
        plugin = registered(node.op_type, namespace)
        if (node.domain, node.op_type) in functions:
            if (major, minor) < (10, 7):
                return "function"
            if (major, minor) >= (10, 15) and "plugin_namespace" not in attrs:
                return "function"
            return "plugin" if plugin else "function"
        return "plugin" if plugin else "missing"

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def set_flag(self, flag):
            trt.calls["parser_flags"].add(flag.name)

        def parse(self, model, path=None):
            proto = onnx.load_from_string(bytes(model))
            trt.calls["parsed"].append(proto)
            functions = {(f.domain, f.name) for f in proto.functions}
            imported = {n.name or n.op_type: import_custom_node(n, functions)
                        for n in proto.graph.node if n.domain == "attn_deploy"}
            trt.calls["imported"].append(imported)
            ok = parse_ok and "missing" not in imported.values()
            self.num_errors = 0 if ok else 1
            return ok

        def get_error(self, i):
            return Error()
    trt.OnnxParser = Parser

    class Config:
        def set_memory_pool_limit(self, pool, size): trt.calls["workspace"] = size
        def set_flag(self, f): trt.calls["flags"].add(f.name)
        def clear_flag(self, f): trt.calls["cleared"].add(f.name)
        def add_optimization_profile(self, p): pass
        def create_timing_cache(self, data): return types.SimpleNamespace(data=data)
        def set_timing_cache(self, cache, ignore_mismatch): trt.calls["timing_in"] = cache.data
        def get_timing_cache(self): return types.SimpleNamespace(serialize=lambda: b"timing")

    class Profile:
        def set_shape(self, name, lo, opt, hi): trt.calls["shapes"][name] = (lo, opt, hi)

    class Builder:
        def __init__(self, logger): pass
        def create_network(self, flags): return object()
        def create_builder_config(self): return Config()
        def create_optimization_profile(self): return Profile()

        def build_serialized_network(self, network, config):
            trt.calls["builds"] += 1
            return b"engine"
    trt.Builder = Builder
    return trt
