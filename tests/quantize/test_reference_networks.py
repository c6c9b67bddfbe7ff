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

NETWORKS = {
    "ccnet": (ccnet_resnet, {"num_classes": 5, "stem_channels": 8, "base_channels": 8,
                             "stage_blocks": [1, 1, 1, 1], "channels": 16, "aux_channels": 8},
              "CrissCrossAttention", {}, (2, 3, 64, 64), [(2, 3, 64, 48), (1, 3, 57, 41)]),
    "fpn_carafe": (fpn_carafe_resnet, {"base_channels": 8, "stage_blocks": [1, 1, 1, 1],
                                       "out_channels": 16, "compressed_channels": 8},
                   "CARAFE", {"H": 64, "W": 64}, (2, 3, 128, 192),
                   [(2, 3, 128, 128), (1, 3, 192, 64)]),
}


def _trained(model, seed):
    """Weights and BN statistics away from the initialisation (a zero attention gamma and
    near-uniform CARAFE kernels would leave the custom nodes out of the numbers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * (
                    0.5 if t.dim() < 2 else (2.0 / t[0].numel()) ** 0.5))
    return model.eval()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_reference_network_int8(name, tmp_path):
    factory, kwargs, custom, multiples, example, shapes = NETWORKS[name]
    model = _trained(factory(**kwargs), 0)
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
