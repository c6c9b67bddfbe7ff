"""Engines and the runner on a real TensorRT (skipped, with the reason, where TensorRT or a GPU
is absent): parity with PyTorch at two shapes, fp32 and fp16, the plugins, and the cache."""
import numpy as np
import pytest
import torch

import attn_deploy as ad
from attn_deploy.backends.tensorrt.plugin_library import plugin_library_path
from attn_deploy.backends.tensorrt.runtime_env import tensorrt_availability

_ok, _why = tensorrt_availability()
pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu,
              pytest.mark.skipif(not _ok, reason=f"TensorRT runtime unavailable: {_why}")]

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}


def _parity(key, tmp_path, precision, flavor="default"):
    from attn_deploy.backends.tensorrt.runner import TensorRTRunner

    model = ad.create(key)
    path = ad.export_block(key, tmp_path / f"{key}-{flavor}.onnx", model=model, flavor=flavor)
    runner = TensorRTRunner(path, precision=precision, cache_dir=tmp_path / "cache")
    with runner:
        for dims in ({}, ad.spec(key).alternate_dims()):
            xs = ad.example_inputs(key, seed=1, **dims)
            with torch.no_grad():
                ref = model(*xs)
            ref = ref[0] if isinstance(ref, (tuple, list)) else ref
            out = runner.infer(dict(zip(ad.spec(key).inputs, xs)))
            y = out[ad.spec(key).outputs[0]]
            assert np.isfinite(y).all()
            rel = np.linalg.norm(y - ref.numpy()) / np.linalg.norm(ref.numpy())
            assert rel <= TOLERANCE[precision], (key, precision, dims, rel)
        assert runner.time_infer(dict(zip(ad.spec(key).inputs, xs))) > 0
    return runner


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_standard_block_engine_matches_pytorch(tmp_path, precision):
    first = _parity("se", tmp_path, precision)
    assert not first.build.cached
    again = _parity("se", tmp_path, precision)
    assert again.build.cached and again.build.path == first.build.path


@pytest.mark.parametrize("key", ["carafe", "cca"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_plugin_blocks_engine_matches_pytorch(tmp_path, key, precision):
    if plugin_library_path(required=False) is None:
        pytest.skip("libattn_deploy_plugins.so not built (see plugins/README.md)")
    runner = _parity(key, tmp_path, precision, flavor="tensorrt")
    assert runner.build.plugin_library is not None


def test_missing_plugin_library_is_named(tmp_path, monkeypatch):
    from attn_deploy.errors import AttnDeployError
    from attn_deploy.backends.tensorrt.engine_builder import build_engine

    monkeypatch.setenv("ATTN_DEPLOY_PLUGINS_LIB", str(tmp_path / "absent.so"))
    path = ad.export_block("cca", tmp_path / "cca.onnx", flavor="tensorrt")
    with pytest.raises(AttnDeployError, match="ATTN_DEPLOY_PLUGINS_LIB"):
        build_engine(path, cache_dir=tmp_path)
