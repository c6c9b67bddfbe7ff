"""The blocks behind the custom ops: ``cca`` (CCNet) and ``carafe`` (CARAFE upsampler).

Semantics against independent formulations, configuration errors, training, and the export:
one custom node per op call with its local function, ONNX Runtime and onnx.reference parity at
the default and alternate dims, the plain and tensorrt flavors of the same file."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx.reference import ReferenceEvaluator

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.export.flavors import apply_flavor
from attn_deploy.modules.carafe import CARAFEUpsampler
from attn_deploy.modules.criss_cross import CrissCrossAttention
from attn_deploy.ops import carafe_reference, criss_cross_attention_reference

NODES = {"cca": ("CrissCrossAttention", 2), "carafe": ("CARAFE", 1)}  # op type, calls


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module", params=sorted(NODES))
def exported(request, tmp_path_factory):
    key = request.param
    torch.manual_seed(0)
    model = ad.create(key)
    path = ad.export_block(key, tmp_path_factory.mktemp(key) / f"{key}.onnx", model=model)
    return key, model, onnx.load(str(path))


def run_all(proto, key, model, runners):
    for dims in ({}, ad.spec(key).alternate_dims()):
        xs = ad.example_inputs(key, seed=7, **dims)
        with torch.no_grad():
            expected = model(*xs).numpy()
        feed = {name: x.numpy() for name, x in zip(ad.spec(key).inputs, xs)}
        for runner in runners:
            got = runner(proto).run(None, feed)[0]
            assert got.shape == expected.shape and rel_l2(got, expected) <= 1e-5, (runner, dims)


def test_export_has_custom_nodes_with_local_function_and_parity(exported):
    key, model, proto = exported
    op_type, calls = NODES[key]
    assert [n.op_type for n in proto.graph.node if n.domain == "attn_deploy"] == [op_type] * calls
    assert [(f.domain, f.name) for f in proto.functions] == [("attn_deploy", op_type)]
    run_all(proto, key, model, [lambda p: ort.InferenceSession(p.SerializeToString()),
                                ReferenceEvaluator])


def test_plain_and_tensorrt_flavors(exported):
    key, model, proto = exported
    plain = apply_flavor(onnx.ModelProto.FromString(proto.SerializeToString()), "plain")
    assert not plain.functions and {n.domain for n in plain.graph.node} == {""}
    onnx.checker.check_model(plain, full_check=True)
    run_all(plain, key, model, [lambda p: ort.InferenceSession(p.SerializeToString())])
    trt = apply_flavor(onnx.ModelProto.FromString(proto.SerializeToString()), "tensorrt")
    assert not trt.functions
    custom = [n for n in trt.graph.node if n.domain == "attn_deploy"]
    assert len(custom) == NODES[key][1]
    assert all({a.name: a.s for a in n.attribute}["plugin_namespace"] == b"attn_deploy"
               for n in custom)
    onnx.checker.check_model(trt, full_check=True)


def test_cca_recurrence_shares_weights_and_adds_gamma_scaled_attention():
    torch.manual_seed(0)
    block = ad.create("cca", channels=16)                       # registered: gamma 0.5
    x = torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        y = block(x)
        manual = x
        for _ in range(2):                                      # R = 2, the same convs
            att = criss_cross_attention_reference(block.query(manual), block.key(manual),
                                                  block.value(manual))
            manual = 0.5 * att + manual
    assert block.query.out_channels == 2 and block.value.out_channels == 16
    torch.testing.assert_close(y, manual, rtol=1e-5, atol=1e-5)
    assert rel_l2(y.numpy(), x.numpy()) > 0.05                  # the attention path matters
    paper_init = CrissCrossAttention(16)                        # gamma 0: identity at init
    torch.testing.assert_close(paper_init(x), x)
    one_step = CrissCrossAttention(16, recurrence=1, gamma_init=0.5)
    assert sum(p.numel() for p in one_step.parameters()) == \
        sum(p.numel() for p in block.parameters())


def naive_carafe_kernels(encoded, k, g, s):
    """mmcv's kernel normalizer by explicit indexing: output pixel (y, x), group gi, tap t uses
    encoder channel (gi*k*k + t)*s*s + (y % s)*s + (x % s) at (y // s, x // s)."""
    n, _, h, w = encoded.shape
    logits = torch.empty(n, g, k * k, h * s, w * s)
    for y in range(h * s):
        for x in range(w * s):
            for gi in range(g):
                for t in range(k * k):
                    c = (gi * k * k + t) * s * s + (y % s) * s + (x % s)
                    logits[:, gi, t, y, x] = encoded[:, c, y // s, x // s]
    return logits.softmax(2).reshape(n, g * k * k, h * s, w * s)


def test_carafe_kernels_follow_mmcv_and_feed_the_op():
    torch.manual_seed(0)
    block = ad.create("carafe", channels=8, up_kernel=3, up_group=2, scale_factor=3)
    x = torch.randn(2, 8, 4, 5)
    with torch.no_grad():
        masks = block.kernels(x)
        expected = naive_carafe_kernels(block.content_encoder(block.channel_compressor(x)),
                                        3, 2, 3)
        y = block(x)
    torch.testing.assert_close(masks, expected, rtol=1e-5, atol=1e-6)
    assert y.shape == (2, 8, 12, 15)
    torch.testing.assert_close(y, carafe_reference(x, expected, 3, 2, 3), rtol=1e-5, atol=1e-5)
    assert masks.std() > 0.05  # registered encoder_std: clearly content-dependent kernels
    block = CARAFEUpsampler(8)  # paper/mmcv init: nearly uniform 1/25 kernels
    assert block.content_encoder.out_channels == 4 * 25
    assert block.channel_compressor.out_channels == 64
    assert (block.kernels(x) - 1 / 25).abs().max() < 0.01


def test_carafe_alternate_config_exports_with_its_attributes(tmp_path):
    torch.manual_seed(0)
    model = ad.create("carafe", channels=16, up_kernel=3, up_group=4, scale_factor=3)
    proto = onnx.load(str(ad.export_block("carafe", tmp_path / "c.onnx", model=model)))
    (node,) = [n for n in proto.graph.node if n.domain == "attn_deploy"]
    assert {a.name: a.i for a in node.attribute} == dict(kernel_size=3, group_size=4,
                                                         scale_factor=3)
    xs = ad.example_inputs("carafe", seed=2, config=dict(channels=16), H=7, W=5)
    with torch.no_grad():
        expected = model(*xs).numpy()
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": xs[0].numpy()})[0]
    assert got.shape == (2, 16, 21, 15) and rel_l2(got, expected) <= 1e-5


@pytest.mark.parametrize("key", sorted(NODES))
def test_blocks_train(key):
    torch.manual_seed(0)
    block = ad.create(key, channels=16).train()
    x = torch.randn(2, 16, 5, 4, requires_grad=True)
    block(x).square().mean().backward()
    grads = [p.grad for p in block.parameters()] + [x.grad]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("key,kwargs,message", [
    ("cca", dict(recurrence=0), "cca: recurrence: expected an int >= 1, got 0"),
    ("cca", dict(rd_ratio=2.0), "rd_ratio: expected a finite number in (0, 1], got 2.0"),
    ("carafe", dict(up_kernel=4), "up_kernel: expected an odd int >= 1, got 4"),
    ("carafe", dict(scale_factor=0), "scale_factor: expected an int >= 1, got 0"),
    ("carafe", dict(channels=64, up_group=3), "up_group: expected a divisor of channels = 64, "
                                              "got 3"),
])
def test_bad_configuration_raises(key, kwargs, message):
    with pytest.raises(AttnDeployError) as err:
        ad.create(key, **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("key", sorted(NODES))
def test_wrong_input_channels_raise(key):
    with pytest.raises(AttnDeployError, match=r"x: expected \[N, 64, H, W\], got \[2, 8, 4, 4\]"):
        ad.create(key)(torch.randn(2, 8, 4, 4))


def test_carafe_mask_helper_is_f_pixel_shuffle_compatible():
    """pixel_shuffle exports to DepthToSpace (CRD); the kernels use its channel order."""
    enc = torch.randn(1, 4 * 9, 2, 3)
    torch.testing.assert_close(F.pixel_shuffle(enc, 2).reshape(1, 1, 9, 4, 6).softmax(2)
                               .reshape(1, 9, 4, 6), naive_carafe_kernels(enc, 3, 1, 2))
