"""The static TensorRT check (trt-check): per-node verdicts on hand-made graphs, the custom nodes
in each export flavor, and every registered block's export."""
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.trt_check.model_check import check_model


def _model(nodes, inputs, outputs, initializers=(), opset=18, functions=(), extra_opsets=()):
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    imports = [h.make_opsetid("", opset)] + [h.make_opsetid(d, 1) for d in extra_opsets]
    return h.make_model(graph, opset_imports=imports, functions=list(functions))


X = h.make_tensor_value_info("x", T.FLOAT, ["N", 8, "H", "W"])


def _out(name, elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, None)


def _reasons(result, node, version="10.3"):
    return [r for n in result.versions[version].nodes if n.node == node for r in n.reasons]


def test_supported_graph_passes_every_version():
    axes = h.make_tensor("axes", T.INT64, [1], [1])
    model = _model([h.make_node("Relu", ["x"], ["r"], name="relu"),
                    h.make_node("ReduceSum", ["r", "axes"], ["y"], name="sum")],
                   [X], [_out("y")], [axes])
    result = check_model(model)
    assert result and result.failures() == []
    assert set(result.versions) == {"10.3", "11.1"}
    assert all(n.via == "native" for n in result.versions["11.1"].nodes)


@pytest.mark.parametrize("node, inits, fragment", [
    (h.make_node("Unique", ["x"], ["y"], name="n"), [], "not supported by TensorRT"),
    (h.make_node("ReduceSum", ["x", "a"], ["y"], name="n"), [], "must be a build-time constant"),
    (h.make_node("Resize", ["x", "", "s"], ["y"], name="n", mode="cubic"),
     [h.make_tensor("s", T.FLOAT, [4], [1, 1, 2, 2])], "mode='cubic'"),
    (h.make_node("Resize", ["x", "", "s"], ["y"], name="n",
                 coordinate_transformation_mode="tf_crop_and_resize"),
     [h.make_tensor("s", T.FLOAT, [4], [1, 1, 2, 2])], "coordinate_transformation_mode"),
    (h.make_node("MaxPool", ["x"], ["y"], name="n", kernel_shape=[2, 2], dilations=[2, 2]), [],
     "dilations"),
    (h.make_node("TopK", ["x", "k"], ["y", "i"], name="n", sorted=0),
     [h.make_tensor("k", T.INT64, [1], [3])], "sorted"),
    (h.make_node("TopK", ["x", "k"], ["y", "i"], name="n"),
     [h.make_tensor("k", T.INT64, [1], [4000])], "less than 3840"),
    (h.make_node("Dropout", ["x", "", "t"], ["y"], name="n"),
     [h.make_tensor("t", T.BOOL, [], [True])], "must be False"),
    (h.make_node("ScatterND", ["x", "i", "x"], ["y"], name="n", reduction="add"),
     [h.make_tensor("i", T.INT64, [1, 1], [0])], "reduction"),
])
def test_each_restriction_fails_with_its_reason(node, inits, fragment):
    extra = [h.make_tensor_value_info("a", T.INT64, [1])] if "a" in node.input else []
    model = _model([node], [X] + extra, [_out("y")], inits)
    result = check_model(model)
    assert not result
    reasons = _reasons(result, "n") + _reasons(result, "n", "11.1")
    assert any(fragment in r for r in reasons), reasons
    assert [f.node for f in result.failures()] == ["n"]


def test_types_and_opset_are_checked_per_version():
    cast = h.make_node("Cast", ["x"], ["c"], to=T.INT8, name="cast")
    relu = h.make_node("Relu", ["c"], ["y"], name="relu")  # Relu lists no INT8
    result = check_model(_model([cast, relu], [X], [_out("y", T.INT8)]))
    assert any("type INT8" in r for r in _reasons(result, "relu"))
    high = check_model(_model([h.make_node("Relu", ["x"], ["y"])], [X], [_out("y")], opset=21))
    assert high.versions["10.3"].model_reasons == ["opset 21 outside TensorRT 10.3's range 9-20"]
    assert high.versions["11.1"]  # 11.1 parses opsets up to 24


def test_used_indices_output_of_maxpool_is_rejected_unused_is_fine():
    def pool(used):
        nodes = [h.make_node("MaxPool", ["x"], ["y", "idx"], name="p", kernel_shape=[2, 2])]
        outs = [_out("y")] + ([_out("idx", T.INT64)] if used else [])
        return check_model(_model(nodes, [X], outs))
    assert pool(False)
    assert "outputs [1] are unsupported (they are used)" in _reasons(pool(True), "p")


def _carafe_node(**attrs):
    attrs = {"kernel_size": 5, "group_size": 2, "scale_factor": 2, **attrs}
    return h.make_node("CARAFE", ["x", "m"], ["y"], name="carafe", domain="attn_deploy", **attrs)


MASKS = h.make_tensor_value_info("m", T.FLOAT, ["N", 50, "H2", "W2"])


def test_custom_nodes_count_as_supported_through_the_plugins():
    model = _model([_carafe_node(plugin_namespace="attn_deploy")], [X, MASKS], [_out("y")],
                   extra_opsets=["attn_deploy"])
    result = check_model(model)
    assert result
    assert all(n.via == "plugin" for v in result.versions.values() for n in v.nodes)


@pytest.mark.parametrize("attrs, fragment", [
    ({"kernel_size": 4}, "kernel_size must be an odd integer >= 1, got 4"),
    ({"group_size": 3}, "group_size 3 must divide the 8 channels"),
    ({"scale_factor": 0}, "scale_factor must be an integer >= 1, got 0"),
    ({"kernel_size": 3}, "group_size * kernel_size^2 = 18 channels, got 50"),
    ({"plugin_namespace": "other"}, "plugin_namespace='other'"),
    ({"kernel_size": 257}, "kernel_size must be at most 255 (the ops' size limit), got 257"),
    ({"kernel_size": 2147483647}, "kernel_size must be at most 255"),
    ({"scale_factor": 65}, "scale_factor must be at most 64 (the ops' size limit), got 65"),
])
def test_custom_node_attributes_are_validated_like_the_plugin_does(attrs, fragment):
    model = _model([_carafe_node(**attrs)], [X, MASKS], [_out("y")], extra_opsets=["attn_deploy"])
    result = check_model(model)
    assert not result
    assert any(fragment in r for r in _reasons(result, "carafe")), _reasons(result, "carafe")


def test_plugin_nodes_beyond_the_ops_plane_limit_are_refused():
    """The same size limits as the op's argument check and the plugin core (op_contract)."""
    features = h.make_tensor_value_info("x", T.FLOAT, [1, 8, 8192, 8192])
    masks = h.make_tensor_value_info("m", T.FLOAT, [1, 50, 16384, 16384])
    result = check_model(_model([_carafe_node()], [features, masks], [_out("y")],
                                extra_opsets=["attn_deploy"]))
    assert any("H*W*scale_factor^2 = 8192*8192*2^2 = 268435456 must be below 2^27" in r
               for r in _reasons(result, "carafe")), _reasons(result, "carafe")
    q = h.make_tensor_value_info("q", T.FLOAT, [1, 2, 8192, 16384])
    v = h.make_tensor_value_info("v", T.FLOAT, [1, 4, 8192, 16384])
    node = h.make_node("CrissCrossAttention", ["q", "q", "v"], ["y"], name="cca",
                       domain="attn_deploy")
    result = check_model(_model([node], [q, v], [_out("y")], extra_opsets=["attn_deploy"]))
    assert any("H*W = 8192*16384 = 134217728 must be below 2^27" in r
               for r in _reasons(result, "cca")), _reasons(result, "cca")
    small = h.make_tensor_value_info("q", T.FLOAT, [1, 2, 8192, 16383])
    result = check_model(_model([node], [small, v], [_out("y")], extra_opsets=["attn_deploy"]))
    assert not any("2^27" in r for r in _reasons(result, "cca"))


def test_missing_and_mistyped_plugin_attributes():
    node = h.make_node("CARAFE", ["x", "m"], ["y"], name="carafe", domain="attn_deploy",
                       kernel_size=5, scale_factor=2.0)
    result = check_model(_model([node], [X, MASKS], [_out("y")], extra_opsets=["attn_deploy"]))
    reasons = _reasons(result, "carafe")
    assert "missing int attribute 'group_size'" in reasons
    assert any("'scale_factor' must be an int" in r for r in reasons)
    unknown = h.make_node("Softsign2", ["x"], ["y"], name="u", domain="attn_deploy")
    result = check_model(_model([unknown], [X], [_out("y")], extra_opsets=["attn_deploy"]))
    assert any("no attn_deploy plugin named 'Softsign2'" in r for r in _reasons(result, "u"))


def test_export_flavors_of_a_plugin_block():
    """Default flavor: TensorRT imports the local function (its body is checked); TensorRT
    flavor: the plugin."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        default = check_model(ad.export_block("cca", f"{d}/cca.onnx"))
        trt = check_model(ad.export_block("cca", f"{d}/cca_trt.onnx", flavor="tensorrt"))
    for result, via in ((default, "function"), (trt, "plugin")):
        assert result, result.summary()
        for verdict in result.versions.values():
            custom = [n for n in verdict.nodes if n.domain == "attn_deploy"]
            assert custom and all(n.via == via for n in custom)
    body = [n for n in default.versions["10.3"].nodes if n.where.startswith("function")]
    assert body, "the local function's body must be checked when TensorRT would use it"


def test_unreadable_input_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AttnDeployError, match="not an ONNX model"):
        check_model(bad)
    with pytest.raises(AttnDeployError, match="no such file"):
        check_model(tmp_path / "missing.onnx")
    relu = _model([h.make_node("Relu", ["x"], ["y"])], [X], [_out("y")])
    with pytest.raises(AttnDeployError, match="covers TensorRT 10.x and 11.x"):
        check_model(relu, ["9.0"])
    with pytest.raises(AttnDeployError, match="expected MAJOR.MINOR"):
        check_model(relu, ["ten"])


# Every block's default export is trt-checked in tests/modules/test_blocks.py (same file as
# its parity run); here the TensorRT flavor of the plugin blocks.
@pytest.mark.parametrize("key", [k for k in ad.list_modules()
                                 if ad.spec(k).export_path == "plugin"])
def test_plugin_blocks_tensorrt_flavor_passes_trt_check(key, tmp_path):
    for flavor in ["tensorrt"]:
        path = ad.export_block(key, tmp_path / f"{key}-{flavor}.onnx", flavor=flavor)
        result = check_model(path)
        assert result, f"{key} ({flavor}):\n{result.summary()}"
        assert np.all([v.opset == 18 for v in result.versions.values()])
