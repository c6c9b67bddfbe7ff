"""The Q/DQ placement rules on hand-built graphs: each violation is found, with its reason, and
a placement TensorRT fuses passes."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attn_deploy.errors import AttnDeployError
from attn_deploy.quantize.placement_rules import check_qdq_placement, float_only_nodes

W = np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32)


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _model(nodes, inits, functions=(), out="y"):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 8, 6, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                   helper.make_opsetid("attn_deploy", 1)],
                             functions=list(functions))


def _qdq_conv(x_scale=0.05, zp_dtype=np.int8, w_scale=None, w_axis=0, before=()):
    """x -> [before] -> Q -> DQ -> Conv(DQ(w)) -> y: the placement TensorRT fuses."""
    src = before[-1].output[0] if before else "x"
    w_scale = np.abs(W).max(axis=(1, 2, 3)) / 127 if w_scale is None else w_scale
    w_q = np.round(W / w_scale.reshape(-1, 1, 1, 1) if w_axis == 0 and w_scale.size == 8
                   else W / np.max(w_scale)).clip(-127, 127).astype(np.int8)
    nodes = list(before) + [
        helper.make_node("QuantizeLinear", [src, "xs", "xz"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w",
                         axis=w_axis),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    inits = [_init("xs", np.float32(x_scale)), _init("xz", zp_dtype(0)),
             _init("wq", w_q), _init("ws", w_scale.astype(np.float32)),
             _init("wz", np.zeros(w_scale.shape, np.int8))]
    return _model(nodes, inits)


def _reasons(model):
    onnx.checker.check_model(model)
    return [str(i) for i in check_qdq_placement(model, "10.3")]


def test_fused_conv_placement_passes():
    assert _reasons(_qdq_conv()) == []


@pytest.mark.parametrize("kwargs,match", [
    ({"zp_dtype": np.uint8}, "q_x .*UINT8; TensorRT takes signed INT8"),
    ({"x_scale": np.full(4, 0.05)}, "q_x .*quantized with 4 scales; .*per tensor"),
    ({"x_scale": -0.1}, "scale must be positive"),
    ({"w_axis": 1, "w_scale": np.full(4, 0.01)}, "per-channel axis 1; Conv 'conv' needs .* 0"),
])
def test_violations_are_named(kwargs, match):
    reasons = _reasons(_qdq_conv(**kwargs))
    assert any(__import__("re").search(match, r) for r in reasons), reasons


def test_no_qdq_after_softmax_or_into_custom_nodes_or_in_functions():
    softmax = helper.make_node("Softmax", ["x"], ["p"], name="softmax", axis=1)
    reshape = helper.make_node("Identity", ["p"], ["p2"], name="move")  # data movement only
    m = _qdq_conv(before=[softmax, reshape])
    assert any("q_x" in r and "output of numerically sensitive Softmax" in r for r in _reasons(m))

    body = helper.make_function("attn_deploy", "CARAFE", ["f", "m"], ["o"],
                                [helper.make_node("QuantizeLinear", ["f", "s"], ["o"])],
                                [helper.make_opsetid("", 19)])
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("CARAFE", ["xd", "x"], ["y"], name="carafe", domain="attn_deploy")]
    m = _model(nodes, [_init("xs", np.float32(0.1)), _init("xz", np.int8(0))], [body])
    reasons = [str(i) for i in check_qdq_placement(m)]
    assert any("inside model-local function attn_deploy::CARAFE" in r for r in reasons)
    assert any(r.startswith("carafe [CARAFE]: input 'xd' is dequantized") for r in reasons)
    assert any("dq_x" in r and "feeds attn_deploy custom node CARAFE" in r for r in reasons)


def test_dq_into_a_layer_tensorrt_does_not_run_in_int8():
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("Sigmoid", ["xd"], ["y"], name="gate")]
    m = _model(nodes, [_init("xs", np.float32(0.1)), _init("xz", np.int8(0))])
    assert any("feeds Sigmoid 'gate', which TensorRT does not run in int8" in r
               for r in _reasons(m))


def test_q_without_dq_and_dq_without_q():
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("Cast", ["xq"], ["y"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("DequantizeLinear", ["y", "xs", "xz"], ["yd"], name="dq_y")]
    m = _model(nodes, [_init("xs", np.float32(0.1)), _init("xz", np.int8(0))], out="yd")
    reasons = [str(i) for i in check_qdq_placement(m)]
    assert any("q_x" in r and "followed by DequantizeLinear" in r for r in reasons)
    assert any("dq_y" in r and "comes from Cast" in r for r in reasons)


def test_unknown_tensorrt_version():
    with pytest.raises(AttnDeployError, match="TensorRT version '9.0'"):
        check_qdq_placement(_qdq_conv(), "9.0")


def test_float_only_nodes_finds_matmul_after_softmax():
    nodes = [helper.make_node("Softmax", ["x"], ["p"], name="softmax"),
             helper.make_node("Transpose", ["p"], ["pt"], name="t", perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["pt", "x"], ["a"], name="attn_v"),
             helper.make_node("MatMul", ["x", "x"], ["y"], name="qk")]
    keep = float_only_nodes(_model(nodes, []))
    assert list(keep) == ["attn_v"] and "Softmax 'softmax'" in keep["attn_v"]


def test_trt_check_reports_placement_issues_per_version():
    from attn_deploy.trt_check.model_check import check_model

    good = check_model(_qdq_conv())
    assert good, good.summary()
    bad = check_model(_qdq_conv(zp_dtype=np.uint8))
    assert not bad and set(bad.versions) == {"10.3", "11.1"}
    (failure,) = [f for f in bad.failures() if f.node == "q_x"]
    assert failure.versions == ["10.3", "11.1"]
    assert any("Q/DQ placement: quantizes to UINT8" in r for r in failure.reasons)


def test_version_rules_scale_constness_and_type():
    # a computed scale: TensorRT 10.x wants a build-time constant, 11.x takes it
    computed = [helper.make_node("Abs", ["xs0"], ["xs_c"], name="scale_calc")]
    m = _qdq_conv()
    m.graph.initializer.append(_init("xs0", np.float32(0.05)))
    for n in m.graph.node:
        if n.name == "q_x":
            n.input[1] = "xs_c"
    m.graph.node.insert(0, computed[0])
    assert any("q_x" in r and "build-time constant" in r for r in _reasons(m))
    assert not check_qdq_placement(m, "11.1")

    # an FP32 scale on an FP16 tensor: strongly typed 10.x refuses, 11.x accepts
    nodes = [helper.make_node("QuantizeLinear", ["h", "xs", "xz"], ["hq"], name="q_h"),
             helper.make_node("DequantizeLinear", ["hq", "xs", "xz"], ["hd"], name="dq_h"),
             helper.make_node("MatMul", ["hd", "hd"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("h", TensorProto.FLOAT16, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
        [_init("xs", np.float32(0.1)), _init("xz", np.int8(0))])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    assert any("q_h" in str(i) and "scale type FLOAT differs from the FLOAT16" in str(i)
               for i in check_qdq_placement(m, "10.3"))
    assert not [i for i in check_qdq_placement(m, "11.1") if "scale type" in str(i)]
