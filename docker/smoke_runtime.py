"""Smoke test of a runtime-only image (no PyTorch): writes a small ONNX model with dynamic
N/H/W built from standard ops (onnx.helper, no exporter), then validates it with
``attn-deploy validate`` on the runtimes given (default: ONNX Runtime CPU and the ONNX
reference; add ``tensorrt`` on a device) and runs ``trt-check`` for TensorRT 10.3.

    python3 docker/smoke_runtime.py [RUNTIME ...]
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def squeeze_excite_model(channels: int = 16, hidden: int = 4) -> onnx.ModelProto:
    """x[N,C,H,W] -> x * sigmoid(W2 relu(W1 mean_hw(x))): an SE gate in standard ONNX ops."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((hidden, channels, 1, 1), np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((channels, hidden, 1, 1), np.float32), "w2")
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
             helper.make_node("Conv", ["pooled", "w1"], ["squeezed"]),
             helper.make_node("Relu", ["squeezed"], ["relu"]),
             helper.make_node("Conv", ["relu", "w2"], ["excited"]),
             helper.make_node("Sigmoid", ["excited"], ["gate"]),
             helper.make_node("Mul", ["x", "gate"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", channels, "H", "W"])
    graph = helper.make_graph(nodes, "se_smoke", [x], [y], initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    return model


def main(runtimes: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "se_smoke.onnx"
        onnx.save(squeeze_excite_model(), path)
        shapes = ["--shapes", "x:1x16x8x8", "--shapes", "x:3x16x13x7"]
        for cmd in (["validate", str(path), "--runtimes", *runtimes, *shapes],
                    ["trt-check", str(path), "--tensorrt", "10.3"]):
            code = subprocess.call(["attn-deploy", *cmd])
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["ort-cpu", "onnx-reference"]))
