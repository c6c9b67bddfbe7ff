"""Honest timing: ONNX Runtime sessions timed interleaved with other runtimes run with thread
spinning off, so their idle threads do not slow the runtime timed next."""
import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper

from attn_deploy.backends import OnnxRuntimeRunner
from attn_deploy.harness.bench import bench_runners, settings


def _relu(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _spinning(runner):
    opts = runner.session.get_session_options()
    return [opts.get_session_config_entry(f"session.{k}.allow_spinning")
            for k in ("intra_op", "inter_op")]


def test_runner_spinning_option_reaches_the_session(tmp_path):
    path = _relu(tmp_path / "relu.onnx")
    with OnnxRuntimeRunner(path, spinning=False) as r:
        assert _spinning(r) == ["0", "0"]
    with OnnxRuntimeRunner(path) as r:  # ORT's default (spinning on) outside benchmarks
        with pytest.raises(Exception, match="does not have configuration"):
            r.session.get_session_options().get_session_config_entry(
                "session.intra_op.allow_spinning")


def test_bench_turns_spinning_off_for_every_ort_session(tmp_path, monkeypatch):
    path = _relu(tmp_path / "relu.onnx")
    seen = []
    activate = OnnxRuntimeRunner._activate

    def spy(self):
        activate(self)
        seen.append(_spinning(self))
    monkeypatch.setattr(OnnxRuntimeRunner, "_activate", spy)
    result = bench_runners("relu", [OnnxRuntimeRunner(path)], {"x": np.ones((2, 8), np.float32)},
                           warmup=1, repeats=3, min_seconds=0.0)
    assert seen == [["0", "0"]] and result.timings[0].repeats >= 3
    assert "off" in settings()["ort_spinning"]
