"""Runners: one interface, input checks that name the input, unavailable runtimes reported."""
import numpy as np
import pytest
import torch

import attn_deploy as ad
from attn_deploy.backends import (RUNTIMES, OnnxReferenceRunner, OnnxRuntimeRunner,
                                  TorchRunner, availability, onnx_runner)
from attn_deploy.errors import AttnDeployError, RuntimeUnavailableError


@pytest.fixture(scope="module")
def se_file(tmp_path_factory):
    torch.manual_seed(0)
    m = ad.create("se", channels=16)
    p = ad.export_block("se", tmp_path_factory.mktemp("se") / "se.onnx", model=m)
    return m, p


@pytest.mark.parametrize("runtime", ["ort-cpu", "onnx-reference"])
def test_onnx_runners_match_torch(se_file, runtime):
    m, p = se_file
    x = np.random.default_rng(0).standard_normal((3, 16, 5, 7)).astype(np.float32)
    with onnx_runner(runtime, p) as r:
        y = r.infer({"x": x})["y"]
    with TorchRunner(m, {"x": (torch.float32, ("N", 16, "H", "W"))}, ["y"]) as t:
        ref = t.infer({"x": torch.from_numpy(x)})["y"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [OnnxRuntimeRunner, OnnxReferenceRunner])
def test_bad_feed_names_input_expected_and_actual(se_file, cls):
    _, p = se_file
    with cls(p) as r:
        with pytest.raises(AttnDeployError, match=r"input 'x'.*\(N, 16, H, W\).*\(2, 8, 4, 4\)"):
            r.infer({"x": np.zeros((2, 8, 4, 4), np.float32)})
        with pytest.raises(AttnDeployError, match="rank 4"):
            r.infer({"x": np.zeros((2, 16, 4), np.float32)})
        with pytest.raises(AttnDeployError, match="dtype float32.*float64"):
            r.infer({"x": np.zeros((2, 16, 4, 4), np.float64)})
        with pytest.raises(AttnDeployError, match="missing \\['x'\\]"):
            r.infer({"q": np.zeros((2, 16, 4, 4), np.float32)})


def test_shared_symbol_mismatch_is_reported():
    from attn_deploy.backends.base import TensorMeta, check_feed
    metas = {"a": TensorMeta("a", np.dtype(np.float32), ("N", 3)),
             "b": TensorMeta("b", np.dtype(np.float32), ("N", "L"))}
    with pytest.raises(AttnDeployError, match="dim N is 4 but input 'a' has N = 2"):
        check_feed({"a": np.zeros((2, 3), np.float32), "b": np.zeros((4, 5), np.float32)},
                   metas, "t")


def test_infer_before_activate_and_unavailable_runtimes(se_file):
    _, p = se_file
    with pytest.raises(AttnDeployError, match="activate"):
        OnnxRuntimeRunner(p).infer({"x": np.zeros((1, 16, 2, 2), np.float32)})
    for rt in RUNTIMES:
        ok, why = availability(rt)
        assert ok or why, f"{rt}: unavailable without a reason"
    ok, why = availability("ort-tensorrt")
    if not ok:
        with pytest.raises(RuntimeUnavailableError, match="unavailable"):
            onnx_runner("ort-tensorrt", p).activate()
    with pytest.raises(AttnDeployError, match="unknown runtime"):
        availability("tvm")
