"""A stand-in for the ``tensorrt`` Python module, with the API surface engine_builder uses (names
as in TensorRT's Python bindings, python/src/infer/pyCore.cpp and parsers/pyOnnx.cpp of 10.3 and
11.x). It records what the builder asked for, so the tests check the control flow (precision
handling per TensorRT major, profiles, parser flags, cache) where TensorRT is absent. It proves
nothing about TensorRT itself: test_tensorrt_engine.py does, where TensorRT exists."""
from __future__ import annotations

import enum
import types

import onnx


def make(major: int, parse_ok: bool = True):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = f"{major}.{3 if major == 10 else 1}.0"
    trt.calls = {"parsed": [], "flags": set(), "cleared": set(), "shapes": {}, "parser_flags": set(),
                 "builds": 0, "registry_loads": []}
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

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def set_flag(self, flag):
            trt.calls["parser_flags"].add(flag.name)

        def parse(self, model, path=None):
            trt.calls["parsed"].append(onnx.load_from_string(bytes(model)))
            self.num_errors = 0 if parse_ok else 1
            return parse_ok

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
