"""Quantize small blocks end to end: Q/DQ placement, custom nodes kept with their functions,
scales against an independent numpy computation, accuracy against PyTorch fp32 on held-out
inputs at two shapes, and failures that leave no file behind."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.quantize import block_feeds, check_qdq_placement, measure_accuracy, quantize_model
from attn_deploy.quantize.placement_rules import SENSITIVE_OPS

from .conftest import CONFIGS


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    results = {}
    for key, (model, path) in exported.items():
        feeds = block_feeds(key, CONFIGS[key], 4)
        results[key] = (quantize_model(path, out / f"{key}.int8.onnx", feeds), feeds)
    return results


def _by_output(proto):
    return {o: n for n in proto.graph.node for o in n.output}


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_placement_and_sensitive_ops_stay_float(quantized, key):
    result, _ = quantized[key]
    q = onnx.load(str(result.path))
    assert result.quantized_nodes and result.qdq["dequantize"] > result.qdq["quantize"] > 0
    assert check_qdq_placement(q, "10.3") == [] and check_qdq_placement(q, "11.1") == []
    producer = _by_output(q)
    for node in q.graph.node:
        if node.op_type in SENSITIVE_OPS or node.domain == "attn_deploy":
            for t in node.input:  # no DQ right before, no Q right after
                assert producer.get(t) is None or producer[t].op_type != "DequantizeLinear"
            for other in q.graph.node:
                if other.op_type == "QuantizeLinear":
                    assert other.input[0] not in node.output
        if node.op_type == "QuantizeLinear":
            zp = numpy_helper.to_array(next(i for i in q.graph.initializer
                                            if i.name == node.input[2]))
            assert zp.dtype == np.int8 and not zp.any()
    assert {p.key: p.value for p in q.metadata_props}["attn_deploy_precision"] == "int8"


def test_nodes_fed_by_sensitive_ops_stay_float(exported, quantized):
    from attn_deploy.quantize import float_only_nodes
    for key, (result, _) in quantized.items():
        keep = float_only_nodes(onnx.load(str(exported[key][1])))
        assert set(keep) == set(result.float_nodes)
        assert not set(keep) & set(result.quantized_nodes)


def test_custom_nodes_keep_their_functions(exported, quantized):
    q = onnx.load(str(quantized["cca"][0].path))
    f32 = onnx.load(str(exported["cca"][1]))
    assert sum(n.op_type == "CrissCrossAttention" for n in q.graph.node) == \
        sum(n.op_type == "CrissCrossAttention" for n in f32.graph.node) > 0
    (fq,), (ff,) = q.functions, f32.functions
    assert [(n.op_type, list(n.input), list(n.output)) for n in fq.node] == \
        [(n.op_type, list(n.input), list(n.output)) for n in ff.node]
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in fq.node)


def test_scales_are_symmetric_per_channel_and_per_tensor(exported, quantized):
    """Weights: max|w| / 127 per output channel; an activation: its max |value| over the
    calibration feeds / 127 (MinMax, symmetric), both recomputed here with numpy."""
    result, feeds = quantized["se"]
    f32 = {i.name: numpy_helper.to_array(i)
           for i in onnx.load(str(exported["se"][1])).graph.initializer}
    q = onnx.load(str(result.path))
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    producer = _by_output(q)
    checked = 0
    for node in q.graph.node:
        if node.op_type != "Conv":
            continue
        dq = producer[node.input[1]]
        w_int, scale = inits[dq.input[0]], inits[dq.input[1]]
        w = next(v for v in f32.values() if v.shape == w_int.shape and np.allclose(
            v, w_int * scale.reshape(-1, *[1] * (v.ndim - 1)), atol=scale.max()))
        np.testing.assert_allclose(scale, np.abs(w).reshape(len(w), -1).max(1) / 127, rtol=1e-6)
        checked += 1
    assert checked == 2
    # se: x -> ReduceMean over H, W -> Conv; that Conv's input scale from the feeds by numpy
    q_mean = [n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "mean"]
    want = max(np.abs(f["x"].mean(axis=(2, 3))).max() for f in feeds) / 127
    assert len(q_mean) == 1
    np.testing.assert_allclose(inits[q_mean[0].input[1]], want, rtol=1e-5)


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_heldout_accuracy_against_pytorch_at_two_shapes(exported, quantized, key):
    import torch
    model = exported[key][0]
    s = ad.spec(key, **CONFIGS[key])
    sess = ort.InferenceSession(str(quantized[key][0].path), providers=["CPUExecutionProvider"])
    for i, dims in enumerate([dict(s.dims), s.alternate_dims()]):
        inputs = ad.example_inputs(key, seed=500 + i, config=CONFIGS[key], **dims)
        feed = {n: t.numpy() for n, t in zip(s.inputs, inputs)}
        with torch.no_grad():
            ref = model(*inputs)
        ref = {s.outputs[0]: (ref[0] if isinstance(ref, tuple) else ref).numpy()}
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
        acc = measure_accuracy(out, ref, "int8")
        assert acc, str(acc)
        assert acc.sqnr_db < 120  # quantization happened: fp32 files reach ~140 dB


def test_bad_calibration_writes_nothing_and_keeps_an_old_file(exported, tmp_path):
    path = exported["se"][1]
    out = tmp_path / "se.int8.onnx"
    out.write_bytes(b"old")
    bad = [{"x": np.zeros((1, 3, 4, 4), np.float32)}]
    with pytest.raises(AttnDeployError, match=r"input 'x': expected shape \(N, 16, H, W\)"):
        quantize_model(path, out, bad)
    with pytest.raises(AttnDeployError, match="no .npz or .npy files"):
        quantize_model(path, out, tmp_path)
    with pytest.raises(AttnDeployError, match="is the input file"):
        quantize_model(path, path, bad)
    with pytest.raises(AttnDeployError, match="--exclude names no node"):
        quantize_model(path, out, block_feeds("se", CONFIGS["se"], 1), exclude=["nope"])
    assert out.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [out]


def test_exclude_keeps_a_node_float(exported, tmp_path):
    path = exported["se"][1]
    conv = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv")
    r = quantize_model(path, tmp_path / "se.int8.onnx", block_feeds("se", CONFIGS["se"], 2),
                       exclude=[conv])
    assert conv not in r.quantized_nodes and r.float_nodes[conv] == "excluded by the caller"
    assert len(r.quantized_nodes) == 1


def test_tensorrt_flavor_file_stays_plugin_flavor(exported, tmp_path):
    from attn_deploy.export.flavors import apply_flavor
    from attn_deploy.quantize.quantizer import ort_session
    from attn_deploy.trt_check.model_check import check_model

    trt_file = tmp_path / "cca.trt.onnx"
    onnx.save(apply_flavor(onnx.load(str(exported["cca"][1])), "tensorrt"), str(trt_file))
    feeds = block_feeds("cca", CONFIGS["cca"], 3)
    r = quantize_model(trt_file, tmp_path / "cca.trt.int8.onnx", feeds)
    q = onnx.load(str(r.path))
    assert r.plugin_flavor and not q.functions and len(r.quantized_nodes) == 6
    assert all(any(a.name == "plugin_namespace" for a in n.attribute)
               for n in q.graph.node if n.domain == "attn_deploy")
    verdict = check_model(r.path)
    assert verdict, verdict.summary()
    feed = block_feeds("cca", CONFIGS["cca"], 1, seed=42)[0]
    acc = measure_accuracy(dict(zip(["y"], ort_session(r.path).run(None, feed))),
                           dict(zip(["y"], ort_session(trt_file).run(None, feed))))
    assert acc, str(acc)
