"""float32 -> float16 model conversion (what TensorRT 11's strongly typed fp16 engines build
from): valid ONNX, float16 end to end, numbers within fp16 tolerance of the float32 model."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import attn_deploy as ad
from attn_deploy.backends.tensorrt.fp16_model import convert_to_fp16, is_fp16_model


def _rel(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("key", ["se", "scconv"])
def test_block_converts_and_matches_at_two_shapes(key, tmp_path):
    model = ad.create(key)
    path = ad.export_block(key, tmp_path / f"{key}.onnx", model=model)
    fp32 = onnx.load(path)
    fp16 = convert_to_fp16(fp32)
    assert is_fp16_model(fp16) and not is_fp16_model(fp32)
    assert all(i.data_type != T.FLOAT for i in fp16.graph.initializer)
    s32 = ort.InferenceSession(path)
    s16 = ort.InferenceSession(fp16.SerializeToString())
    for dims in ({}, ad.spec(key).alternate_dims()):
        xs = ad.example_inputs(key, seed=3, **dims)
        feed = {n: x.numpy() for n, x in zip(ad.spec(key).inputs, xs)}
        ref = s32.run(None, feed)[0]
        out = s16.run(None, {n: v.astype(np.float16) for n, v in feed.items()})[0]
        assert out.dtype == np.float16
        assert _rel(out, ref) < 1e-2


def test_float32_only_inputs_and_ops_keep_float32():
    """Resize's scales must stay tensor(float); Range has no float16 form in ONNX."""
    x = h.make_tensor_value_info("x", T.FLOAT, [1, 2, 4, 4])
    n = h.make_tensor_value_info("n", T.FLOAT, [])
    nodes = [h.make_node("Resize", ["x", "", "s"], ["r"], mode="nearest"),
             h.make_node("Range", ["z", "n", "one"], ["a"]),
             h.make_node("ReduceSum", ["a"], ["t"], keepdims=0),
             h.make_node("Add", ["r", "t"], ["y"]),
             h.make_node("Constant", [], ["k"], value_float=0.5),
             h.make_node("Mul", ["y", "k"], ["out"])]
    inits = [h.make_tensor("s", T.FLOAT, [4], [1, 1, 2, 2]), h.make_tensor("z", T.FLOAT, [], [0]),
             h.make_tensor("one", T.FLOAT, [], [1])]
    model = h.make_model(h.make_graph(nodes, "g", [x, n], [h.make_tensor_value_info(
        "out", T.FLOAT, None)], initializer=inits), opset_imports=[h.make_opsetid("", 18)])
    fp16 = convert_to_fp16(model)  # passes strict type inference, or raises
    casts = [node for node in fp16.graph.node if node.op_type == "Cast"]
    assert {c.attribute[0].i for c in casts} == {T.FLOAT, T.FLOAT16}
    feed = {"x": np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4), "n": np.array(5, np.float32)}
    ref = ort.InferenceSession(model.SerializeToString()).run(None, feed)[0]
    out = ort.InferenceSession(fp16.SerializeToString()).run(
        None, {k: np.asarray(v, np.float16) for k, v in feed.items()})[0]
    assert out.shape == (1, 2, 8, 8) and _rel(out, ref) < 1e-3


def test_out_of_range_weights_are_clipped_not_inf():
    x = h.make_tensor_value_info("x", T.FLOAT, [2])
    y = h.make_tensor_value_info("y", T.FLOAT, [2])
    model = h.make_model(h.make_graph(
        [h.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y],
        initializer=[h.make_tensor("w", T.FLOAT, [2], [1e6, -1e6])]),
        opset_imports=[h.make_opsetid("", 18)])
    w = onnx.numpy_helper.to_array(convert_to_fp16(model).graph.initializer[0])
    assert w.dtype == np.float16 and np.all(np.isfinite(w)) and w[0] == np.float16(65504)
