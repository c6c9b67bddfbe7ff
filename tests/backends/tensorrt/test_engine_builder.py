"""build_engine's control flow against a TensorRT stand-in (fake_tensorrt.py): precision per
TensorRT major, profiles, plugins, parser errors and the engine cache. The real TensorRT runs in
test_tensorrt_engine.py where it exists."""
import sys
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.backends.tensorrt import engine_builder, runtime_env
from attn_deploy.backends.tensorrt import plugin_library as pl

sys.path.insert(0, str(Path(__file__).parent))
import fake_tensorrt  # noqa: E402


@pytest.fixture
def fake_trt(monkeypatch):
    def install(major, **kw):
        trt = fake_tensorrt.make(major, **kw)
        monkeypatch.setattr(runtime_env, "_import_tensorrt", lambda: (trt, ""))
        monkeypatch.setattr(engine_builder, "gpu_identity", lambda device=0: "Fake GPU sm_87")
        monkeypatch.setattr(engine_builder, "_LOGGER", None)
        return trt
    return install


@pytest.fixture(scope="module")
def se_path(tmp_path_factory):
    return ad.export_block("se", tmp_path_factory.mktemp("se") / "se.onnx")


def _input_type(proto):
    return proto.graph.input[0].type.tensor_type.elem_type


def test_fp16_uses_the_builder_flag_on_tensorrt_10(fake_trt, se_path, tmp_path):
    trt = fake_trt(10)
    build = engine_builder.build_engine(se_path, precision="fp16", cache_dir=tmp_path)
    assert trt.calls["flags"] == {"FP16"}
    assert _input_type(trt.calls["parsed"][0]) == onnx.TensorProto.FLOAT
    assert not build.cached and build.path.read_bytes() == b"engine" and not build.notes


def test_fp16_builds_a_float16_model_on_tensorrt_11(fake_trt, se_path, tmp_path):
    trt = fake_trt(11)
    build = engine_builder.build_engine(se_path, precision="fp16", cache_dir=tmp_path)
    assert trt.calls["flags"] == set()
    assert _input_type(trt.calls["parsed"][0]) == onnx.TensorProto.FLOAT16
    assert any("strongly typed" in n for n in build.notes)


def test_fp32_turns_tf32_off_and_profiles_follow_the_spec(fake_trt, se_path, tmp_path):
    trt = fake_trt(11)
    build = engine_builder.build_engine(se_path, cache_dir=tmp_path, workspace_mb=256)
    assert "TF32" in trt.calls["cleared"] and trt.calls["workspace"] == 256 << 20
    (name, (lo, opt, hi)), = trt.calls["shapes"].items()
    assert opt == tuple(ad.spec("se").shapes()[name]) and build.profile[name] == (lo, opt, hi)


def test_second_build_comes_from_the_cache(fake_trt, se_path, tmp_path):
    trt = fake_trt(10)
    first = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    second = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    assert (first.cached, second.cached, trt.calls["builds"]) == (False, True, 1)
    assert second.path == first.path
    fp16 = engine_builder.build_engine(se_path, cache_dir=tmp_path, precision="fp16")
    assert fp16.path != first.path
    assert trt.calls["timing_in"] == b"timing"  # the saved timing cache feeds the next build


def test_parser_errors_are_reported_with_the_node(fake_trt, se_path, tmp_path):
    fake_trt(10, parse_ok=False)
    with pytest.raises(AttnDeployError, match=r"node 3 \(bad_node, Foo\): No importer"):
        engine_builder.build_engine(se_path, cache_dir=tmp_path)


def test_plugin_model_needs_the_library_and_its_creators(fake_trt, tmp_path, monkeypatch):
    trt = fake_trt(11)
    path = ad.export_block("cca", tmp_path / "cca.onnx", flavor="tensorrt")
    def not_built(required=True):
        if required:
            raise AttnDeployError("libattn_deploy_plugins.so not found")
        return None
    monkeypatch.setattr(pl, "plugin_library_path", not_built)
    with pytest.raises(AttnDeployError, match="not found"):
        engine_builder.build_engine(path, cache_dir=tmp_path)
    lib = tmp_path / "libattn_deploy_plugins.so"
    lib.write_bytes(b"x")
    monkeypatch.setattr(pl, "load_plugin_library", lambda p, t=None: p)
    with pytest.raises(AttnDeployError, match=r"CrissCrossAttention \(version 1, namespace "
                                              r"'attn_deploy'\), after loading"):
        engine_builder.build_engine(path, cache_dir=tmp_path, plugin_library=lib)
    trt.get_plugin_registry().all_creators.append(SimpleNamespace(
        name="CrissCrossAttention", plugin_version="1", plugin_namespace="attn_deploy"))
    build = engine_builder.build_engine(path, cache_dir=tmp_path, plugin_library=lib)
    assert build.plugin_library == lib and "ENABLE_PLUGIN_OVERRIDE" in trt.calls["parser_flags"]


def test_default_flavor_falls_back_to_local_functions_without_the_library(fake_trt, tmp_path,
                                                                          monkeypatch):
    trt = fake_trt(10)
    path = ad.export_block("cca", tmp_path / "cca.onnx")
    monkeypatch.setattr(pl, "plugin_library_path", lambda required=True: None)
    build = engine_builder.build_engine(path, cache_dir=tmp_path)
    assert build.plugin_library is None and any("local functions" in n for n in build.notes)
    assert trt.calls["parser_flags"] == set()


def test_default_flavor_notes_that_old_parsers_keep_the_local_functions(fake_trt, tmp_path,
                                                                        monkeypatch):
    trt = fake_trt(10)
    path = ad.export_block("cca", tmp_path / "cca.onnx")
    lib = tmp_path / "libattn_deploy_plugins.so"
    lib.write_bytes(b"x")
    monkeypatch.setattr(pl, "load_plugin_library", lambda p, t=None: p)
    trt.get_plugin_registry().all_creators.append(SimpleNamespace(
        name="CrissCrossAttention", plugin_version="1", plugin_namespace="attn_deploy"))
    build = engine_builder.build_engine(path, cache_dir=tmp_path, plugin_library=lib)
    assert any("ENABLE_PLUGIN_OVERRIDE" in n for n in build.notes)
    assert trt.calls["parser_flags"] == set()
