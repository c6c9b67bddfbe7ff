"""The two reference networks (CCNet: ResNetV1c + CCHead with criss-cross attention; ResNet +
FPN_CARAFE) quantized end to end at small widths: custom nodes kept float with their functions,
placement clean, every output within the int8 rule against PyTorch fp32 on held-out inputs at
two shapes."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import attn_deploy as ad
from attn_deploy.deploy.reference_networks import ccnet_resnet, fpn_carafe_resnet
from attn_deploy.quantize import check_qdq_placement, measure_accuracy, quantize_model

NETWORKS = {  # factory, its small widths, custom node, multiples, example, validation shapes
    "ccnet": (ccnet_resnet, "ccnet", "CrissCrossAttention", {}, (2, 3, 64, 64),
              [(2, 3, 64, 48), (1, 3, 57, 41)]),
    "fpn_carafe": (fpn_carafe_resnet, "fpn", "CARAFE", {"H": 64, "W": 64}, (2, 3, 128, 192),
                   [(2, 3, 128, 128), (1, 3, 192, 64)]),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_reference_network_int8(name, tmp_path, small_reference_networks):
    factory, widths, custom, multiples, example, shapes = NETWORKS[name]
    small = small_reference_networks
    model = small.trained(factory(**getattr(small, widths)), 0)
    with torch.no_grad():
        n_out = len(model(torch.randn(example))) if name == "fpn_carafe" else 1
    outputs = [f"out{i}" for i in range(n_out)]
    path = ad.export_onnx(model, (torch.randn(example),), tmp_path / f"{name}.onnx",
                          input_names=["image"], output_names=outputs,
                          dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}},
                          multiples=multiples or None)
    rng = np.random.default_rng(0)
    calib = [{"image": rng.standard_normal((1, *example[1:])).astype(np.float32)}
             for _ in range(6)]
    result = quantize_model(path, tmp_path / f"{name}.int8.onnx", calib)
    q = onnx.load(str(result.path))
    assert result.quantized_nodes and check_qdq_placement(q) == []
    assert [f.name for f in q.functions] == [custom]
    assert sum(n.op_type == custom for n in q.graph.node) == \
        sum(n.op_type == custom for n in onnx.load(str(path)).graph.node) > 0
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        with torch.no_grad():
            ref = model(x)
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        acc = measure_accuracy(dict(zip(outputs, sess.run(outputs, {"image": x.numpy()}))),
                               {n: r.numpy() for n, r in zip(outputs, ref)}, "int8")
        assert acc, f"{name} {shape}:\n{acc}"
