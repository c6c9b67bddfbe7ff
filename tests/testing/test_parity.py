"""assert_parity in-process: the validation shapes it is given, bad shapes refused before any
export, and a named runtime that is absent skipping after the others passed."""
import pytest
import torch

from attn_deploy.errors import AttnDeployError
from attn_deploy.testing import assert_parity

AXES = {"x": {0: "N", 2: "H", 3: "W"}, "y": {0: "N"}}


def _example():
    return torch.randn(2, 4, 5, 6), torch.randn(2, 3)


def test_given_shapes_are_the_validation_shapes(tiny_model):
    v = assert_parity(tiny_model, _example(), input_names=["x", "y"],
                      output_names=["out", "sum"], dynamic_axes=AXES, runtimes=["ort-cpu"],
                      shapes=["x:3x4x7x5,y:3x3", {"x": (4, 4, 2, 9), "y": (4, 3)}])
    assert [c[0] for c in v.cases] == ["x:3x4x7x5,y:3x3", "x:4x4x2x9,y:4x3"]
    assert [(r.runtime, r.status) for r in v.results] == [("ort-cpu", "pass")] * 2
    assert [o.name for o in v.results[0].comparison.outputs] == ["out", "sum"]


def test_bad_shapes_are_refused_before_export(tiny_model):
    with pytest.raises(AttnDeployError, match=r"expected shape \(N, 4, H, W\).*axis 1 must be 4"):
        assert_parity(tiny_model, _example(), input_names=["x", "y"], dynamic_axes=AXES,
                      runtimes=["ort-cpu"], shapes=["x:3x5x7x5,y:3x3"])
    with pytest.raises(AttnDeployError, match="unknown runtime"):
        assert_parity(tiny_model, _example(), runtimes=["tvm"])
    with pytest.raises(AttnDeployError, match="expected 2 names"):
        assert_parity(tiny_model, _example(), input_names=["x"], runtimes=["ort-cpu"])
    with pytest.raises(AttnDeployError, match="precision"):
        assert_parity(tiny_model, _example(), precision="int4", runtimes=["ort-cpu"])


def test_absent_named_runtime_skips_after_the_others_pass(tiny_model, absent_runtime):
    with pytest.raises(pytest.skip.Exception,
                       match=rf"ort-cpu passed at 2 shape\(s\); {absent_runtime} unavailable"):
        assert_parity(tiny_model, _example(), input_names=["x", "y"], dynamic_axes=AXES,
                      runtimes=["ort-cpu", absent_runtime])
