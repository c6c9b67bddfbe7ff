"""Finding and loading the plugin library, and naming missing plugins (no TensorRT needed)."""
import ctypes
from types import SimpleNamespace

import pytest

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError, RuntimeUnavailableError
from attn_deploy.backends.tensorrt import plugin_library as pl
from attn_deploy.backends.tensorrt.engine_builder import plugin_ops


def test_environment_variable_wins(monkeypatch, tmp_path):
    lib = tmp_path / "libattn_deploy_plugins.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(pl.ENV_VAR, str(lib))
    assert pl.plugin_library_path() == lib
    monkeypatch.setenv(pl.ENV_VAR, str(tmp_path / "nope.so"))
    with pytest.raises(AttnDeployError, match="is not a file"):
        pl.plugin_library_path()


def test_missing_library_explains_how_to_build(monkeypatch):
    monkeypatch.delenv(pl.ENV_VAR, raising=False)
    monkeypatch.setattr(pl, "candidate_paths", lambda: [])
    monkeypatch.setattr(pl.ctypes.util, "find_library", lambda name: None)
    assert pl.plugin_library_path(required=False) is None
    with pytest.raises(AttnDeployError, match="cmake -S plugins -B build/plugins"):
        pl.plugin_library_path()


def _fake_trt(*registered):
    creators = [SimpleNamespace(name=n, plugin_version=v, plugin_namespace=ns)
                for n, v, ns in registered]
    registry = SimpleNamespace(all_creators=creators)
    return SimpleNamespace(get_plugin_registry=lambda: registry)


def test_missing_plugins_are_named():
    trt = _fake_trt(("CARAFE", "1", "attn_deploy"), ("CrissCrossAttention", "1", ""))
    pl.require_plugins(trt, [("CARAFE", "1", "attn_deploy")], None)
    with pytest.raises(AttnDeployError) as err:
        pl.require_plugins(trt, [("CARAFE", "2", "attn_deploy"),
                                 ("CrissCrossAttention", "1", "attn_deploy")], "/x/lib.so")
    message = str(err.value)
    assert "CARAFE (version 2, namespace 'attn_deploy')" in message
    assert "CrissCrossAttention (version 1, namespace 'attn_deploy')" in message
    assert "after loading /x/lib.so" in message


def test_plugin_ops_of_each_flavor(tmp_path):
    import onnx
    trt_flavor = onnx.load(ad.export_block("cca", tmp_path / "a.onnx", flavor="tensorrt"))
    default = onnx.load(ad.export_block("cca", tmp_path / "b.onnx"))
    assert plugin_ops(trt_flavor) == [("CrissCrossAttention", "1", "attn_deploy", False)]
    assert plugin_ops(default) == [("CrissCrossAttention", "1", "attn_deploy", True)]


def test_built_library_loads_without_tensorrt():
    path = pl.plugin_library_path(required=False)
    if path is None:
        pytest.skip("libattn_deploy_plugins.so not built (see plugins/README.md)")
    lib = ctypes.CDLL(str(path))  # load-time registration finds no TensorRT: must not fail
    count = ctypes.c_int32(0)
    lib.getCreators.restype = ctypes.c_void_p
    assert lib.getCreators(ctypes.byref(count)) and count.value == 2


def test_engine_building_without_tensorrt_says_why(tmp_path):
    from attn_deploy.backends.tensorrt.engine_builder import build_engine
    from attn_deploy.backends.tensorrt.runner import TensorRTRunner
    from attn_deploy.backends.tensorrt.runtime_env import tensorrt_availability

    ok, why = tensorrt_availability()
    if ok:
        pytest.skip("TensorRT and a GPU are present")
    path = ad.export_block("se", tmp_path / "se.onnx")
    with pytest.raises(RuntimeUnavailableError, match="unavailable"):
        build_engine(path)
    assert TensorRTRunner.runtime_availability() == (False, why)
    with pytest.raises(RuntimeUnavailableError, match="tensorrt is unavailable"):
        TensorRTRunner(path).activate()
