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


class FakeCuda:
    def __init__(self):
        self.devices = []

    def set_device(self, device):
        self.devices.append(device)


@pytest.fixture
def fake_trt(monkeypatch):
    def install(version, **kw):
        trt = fake_tensorrt.make(version, **kw)
        trt.cuda = FakeCuda()
        monkeypatch.setattr(runtime_env, "_import_tensorrt", lambda: (trt, ""))
        monkeypatch.setattr(engine_builder, "gpu_identity",
                            lambda device=0: f"Fake GPU {device} sm_87")
        monkeypatch.setattr(engine_builder, "cuda_runtime", lambda: trt.cuda)
        monkeypatch.setattr(engine_builder, "_LOGGER", None)
        return trt
    return install


def _with_plugins(trt, *names):
    for name in names:
        trt.get_plugin_registry().all_creators.append(SimpleNamespace(
            name=name, plugin_version="1", plugin_namespace="attn_deploy"))


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
    _with_plugins(trt, "CrissCrossAttention")
    build = engine_builder.build_engine(path, cache_dir=tmp_path, plugin_library=lib)
    assert build.plugin_library == lib.resolve() and trt.calls["parser_flags"] == set()
    assert set(trt.calls["imported"][-1].values()) == {"plugin"}


@pytest.mark.parametrize("version", ["10.3", "10.7", "10.10", "10.15", "11.1"])
@pytest.mark.parametrize("flavor", ["default", "tensorrt"])
def test_loaded_library_binds_every_flavor_to_the_plugins(fake_trt, tmp_path, monkeypatch,
                                                          version, flavor, cca_files):
    trt = fake_trt(version)
    lib = tmp_path / "libattn_deploy_plugins.so"
    lib.write_bytes(b"x")
    monkeypatch.setattr(pl, "load_plugin_library", lambda p, t=None: p)
    _with_plugins(trt, "CrissCrossAttention")
    build = engine_builder.build_engine(cca_files[flavor], cache_dir=tmp_path,
                                        plugin_library=lib)
    assert set(trt.calls["imported"][-1].values()) == {"plugin"}, trt.calls["imported"]
    assert not trt.calls["parsed"][-1].functions  # the functions were stripped in memory
    assert any("bound to the plugins" in n for n in build.notes)


@pytest.fixture(scope="module")
def cca_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cca")
    return {flavor: ad.export_block("cca", folder / f"{flavor}.onnx", flavor=flavor)
            for flavor in ("default", "tensorrt")}


def test_default_flavor_falls_back_to_local_functions_without_the_library(fake_trt, tmp_path,
                                                                          monkeypatch, cca_files):
    trt = fake_trt(10)
    monkeypatch.setattr(pl, "plugin_library_path", lambda required=True: None)
    build = engine_builder.build_engine(cca_files["default"], cache_dir=tmp_path)
    assert build.plugin_library is None and any("local functions" in n for n in build.notes)
    assert set(trt.calls["imported"][-1].values()) == {"function"}


def test_device_is_made_current_and_keys_the_cache(fake_trt, se_path, tmp_path):
    trt = fake_trt("10.3")
    first = engine_builder.build_engine(se_path, cache_dir=tmp_path, device=1)
    second = engine_builder.build_engine(se_path, cache_dir=tmp_path, device=0)
    assert trt.cuda.devices == [1, 0]
    assert first.path != second.path and not second.cached


def test_plugin_library_hash_keys_the_engine_and_timing_caches(fake_trt, tmp_path, monkeypatch,
                                                              cca_files):
    trt = fake_trt("10.15")
    monkeypatch.setattr(pl, "load_plugin_library", lambda p, t=None: p)
    _with_plugins(trt, "CrissCrossAttention")
    real = tmp_path / "libattn_deploy_plugins.so.1.0.0"
    real.write_bytes(b"build one")
    link = tmp_path / "libattn_deploy_plugins.so"
    link.symlink_to(real.name)
    first = engine_builder.build_engine(cca_files["tensorrt"], cache_dir=tmp_path,
                                        plugin_library=link)
    assert first.plugin_library == real  # the symlink is resolved to the file that is hashed
    timing = sorted(tmp_path.glob("timing.*"))
    real.write_bytes(b"build two")  # a rebuilt library: new engine and new timing cache
    second = engine_builder.build_engine(cca_files["tensorrt"], cache_dir=tmp_path,
                                         plugin_library=link)
    assert not second.cached and second.path != first.path
    assert len(sorted(tmp_path.glob("timing.*"))) == len(timing) + 1


@pytest.mark.parametrize("damage", ["truncate", "swap", "no_key"])
def test_damaged_cache_entries_are_rebuilt_and_said(fake_trt, se_path, tmp_path, damage):
    trt = fake_trt(10)
    first = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    if damage == "truncate":
        first.path.write_bytes(first.path.read_bytes()[:3])
    elif damage == "swap":
        first.path.write_bytes(b"another model's engine")
    else:
        first.path.with_suffix(".json").unlink()
    again = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    assert not again.cached and trt.calls["builds"] == 2
    assert any("rebuilding" in n for n in again.notes), again.notes
    assert again.path.read_bytes() == b"engine"
    assert engine_builder.build_engine(se_path, cache_dir=tmp_path).cached


def test_cache_key_file_of_another_key_is_not_trusted(fake_trt, se_path, tmp_path):
    fake_trt(10)
    first = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    key_file = first.path.with_suffix(".json")
    key_file.write_text(key_file.read_text().replace("Fake GPU 0 sm_87", "Other GPU sm_80"))
    again = engine_builder.build_engine(se_path, cache_dir=tmp_path)
    assert not again.cached and any("another key" in n for n in again.notes)
