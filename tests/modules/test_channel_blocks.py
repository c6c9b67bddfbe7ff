"""Channel and gating blocks: eca, cbam, bam, gc, sk, split_attn.

Each block is checked against a re-computation written independently of the module (functional
ops, explicit loops, hand-written BatchNorm/LayerNorm/softmax) on random inputs at two shapes,
with non-trivial BatchNorm statistics and norm affine parameters; then exported to ONNX and run
with ONNX Runtime and onnx.reference at the default and the alternate dims.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx.reference import ReferenceEvaluator
from torch import nn

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.modules.efficient_channel import EfficientChannelAttention, eca_kernel_size
from attn_deploy.modules.global_context import GlobalContext
from attn_deploy.modules.selective_kernel import SelectiveKernel

KEYS = ("eca", "cbam", "bam", "gc", "sk", "split_attn")


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm running stats and norm affine params, so eval-mode BN is not ~1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model


def build(key: str, seed: int = 0, **config) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_norms(ad.create(key, **config), seed)


def bn(v: torch.Tensor, m: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BatchNorm by its formula, over dim 1 of a 2-D or 4-D tensor."""
    shape = (1, -1) + (1,) * (v.dim() - 2)
    scale = m.weight / torch.sqrt(m.running_var + m.eps)
    return (v - m.running_mean.view(shape)) * scale.view(shape) + m.bias.view(shape)


def fc(v: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 conv used as a fully connected layer on [N, Cin] -> [N, Cout]."""
    return F.linear(v, conv.weight.flatten(1), conv.bias)


# ---- eca ----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,k", [(1, 1), (2, 1), (4, 1), (8, 3), (16, 3), (48, 3),
                                        (64, 3), (128, 5), (192, 5), (256, 5), (512, 5),
                                        (1024, 5), (2048, 7)])
def test_eca_kernel_size_follows_the_paper_formula(channels, k):
    # Values worked out by hand from t = int(|(log2 C + 1) / 2|), k = t or t + 1 (odd).
    assert eca_kernel_size(channels) == k
    assert EfficientChannelAttention(channels).conv.kernel_size == (k,)


@pytest.mark.parametrize("config,shape", [({}, (2, 64, 9, 7)),
                                          ({"channels": 256}, (3, 256, 5, 6)),
                                          ({"channels": 40, "kernel_size": 7}, (2, 40, 4, 4))])
def test_eca_matches_a_per_channel_loop(config, shape, close):
    m = build("eca", **config)
    x = torch.randn(shape)
    w = m.conv.weight.flatten().tolist()
    k, c = len(w), shape[1]
    s = x.mean((2, 3))
    gate = torch.zeros_like(s)
    for ch in range(c):
        for j in range(k):
            src = ch + j - (k - 1) // 2
            if 0 <= src < c:
                gate[:, ch] += w[j] * s[:, src]
    close(m(x), x * torch.sigmoid(gate)[:, :, None, None])


# ---- cbam ---------------------------------------------------------------------------------

def cbam_reference(m, x):
    mlp = lambda v: fc(F.relu(fc(v, m.fc1)), m.fc2)  # noqa: E731
    avg = F.adaptive_avg_pool2d(x, 1).flatten(1)
    mx = F.adaptive_max_pool2d(x, 1).flatten(1)
    x1 = x * torch.sigmoid(mlp(avg) + mlp(mx))[:, :, None, None]
    desc = torch.stack([x1.mean(1), x1.max(1).values], 1)
    k = m.spatial_conv.kernel_size[0]
    ms = F.conv2d(desc, m.spatial_conv.weight, m.spatial_conv.bias, padding=k // 2)
    if isinstance(m.spatial_norm, nn.BatchNorm2d):
        ms = bn(ms, m.spatial_norm)
    return x1 * torch.sigmoid(ms)


@pytest.mark.parametrize("config,shape", [({}, (2, 64, 16, 16)),
                                          ({"channels": 48, "rd_channels": 5,
                                            "spatial_norm": False}, (3, 48, 11, 9)),
                                          ({"spatial_kernel_size": 3}, (1, 64, 5, 8))])
def test_cbam_matches_reference(config, shape, close):
    m = build("cbam", **config)
    x = torch.randn(shape)
    close(m(x), cbam_reference(m, x))


# ---- bam ----------------------------------------------------------------------------------

def bam_reference(m, x):
    c_convs = [l for l in m.channel_branch if isinstance(l, nn.Conv2d)]
    c_bns = [l for l in m.channel_branch if isinstance(l, nn.BatchNorm2d)]
    mc = fc(F.relu(bn(fc(x.mean((2, 3)), c_convs[0]), c_bns[0])), c_convs[1])
    if len(c_bns) > 1:
        mc = bn(mc, c_bns[1])
    s_convs = [l for l in m.spatial_branch if isinstance(l, nn.Conv2d)]
    s_bns = [l for l in m.spatial_branch if isinstance(l, nn.BatchNorm2d)]
    reduce, dilated, final = s_convs[0], s_convs[1:-1], s_convs[-1]
    h = torch.einsum("nchw,oc->nohw", x, reduce.weight.flatten(1)) + reduce.bias[:, None, None]
    h = F.relu(bn(h, s_bns[0]))
    for conv, norm in zip(dilated, s_bns[1:]):
        d = conv.dilation[0]
        h = F.relu(bn(F.conv2d(h, conv.weight, conv.bias, padding=d, dilation=d), norm))
    ms = torch.einsum("nchw,oc->nohw", h, final.weight.flatten(1)) + final.bias[:, None, None]
    if len(s_bns) == len(dilated) + 2:
        ms = bn(ms, s_bns[-1])
    return x + x * torch.sigmoid(mc[:, :, None, None] + ms)


@pytest.mark.parametrize("config,shape", [({}, (2, 64, 16, 16)),
                                          ({"channels": 32, "out_norm": False, "dilation": 2},
                                           (3, 32, 9, 13))])
def test_bam_matches_reference(config, shape, close):
    m = build("bam", **config)
    x = torch.randn(shape)
    y = m(x)
    close(y, bam_reference(m, x))
    ratio = y / x  # the attention map 1 + sigmoid(.) lies in (1, 2)
    assert ((ratio > 1) & (ratio < 2)).all()


# ---- gc -----------------------------------------------------------------------------------

def gc_reference(m, x):
    logits = torch.einsum("nchw,c->nhw", x, m.conv_mask.weight.flatten()) + m.conv_mask.bias
    e = torch.exp(logits - logits.amax((1, 2), keepdim=True))
    p = e / e.sum((1, 2), keepdim=True)
    ctx = torch.einsum("nchw,nhw->nc", x, p)
    conv1, ln, _, conv2 = m.transform
    t = fc(ctx, conv1)
    t = (t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, unbiased=False, keepdim=True)
                                                    + ln.eps)
    t = fc(F.relu(t * ln.weight.flatten() + ln.bias.flatten()), conv2)[:, :, None, None]
    return x + t if m.fusion == "add" else x * torch.sigmoid(t)


@pytest.mark.parametrize("config,shape", [({}, (2, 64, 16, 16)),
                                          ({"fusion": "mul", "channels": 48, "rd_ratio": 0.25},
                                           (3, 48, 7, 10))])
def test_gc_matches_reference(config, shape, close):
    m = build("gc", **config)
    x = torch.randn(shape)
    close(m(x), gc_reference(m, x))


def test_gc_paper_init_is_identity_and_registered_init_is_not():
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(GlobalContext(64).eval()(x), x)
    assert not torch.allclose(ad.create("gc")(x), x)


# ---- sk -----------------------------------------------------------------------------------

def sk_reference(m, x):
    c, mb = x.shape[1], len(m.branches)
    feats = []
    for i, (conv, norm, _) in enumerate(m.branches):
        d = i + 1
        feats.append(F.relu(bn(F.conv2d(x, conv.weight, padding=d, dilation=d,
                                        groups=conv.groups), norm)))
    z = F.relu(bn(fc(sum(feats).mean((2, 3)), m.fc_reduce), m.bn))
    w = m.fc_select.weight.flatten(1)
    logits = [z @ w[i * c:(i + 1) * c].T for i in range(mb)]
    e = [torch.exp(v) for v in logits]
    weights = [(ei / sum(e))[:, :, None, None] for ei in e]
    return sum(w * f for w, f in zip(weights, feats))


@pytest.mark.parametrize("config,shape", [({}, (2, 64, 16, 16)),
                                          ({"channels": 48, "num_branches": 3},
                                           (3, 48, 9, 11))])
def test_sk_matches_reference_and_weights_sum_to_one(config, shape, close):
    m = build("sk", **config)
    seen = []
    m.select.register_forward_hook(lambda mod, inp, out: seen.append(out))
    x = torch.randn(shape)
    close(m(x), sk_reference(m, x))
    (weights,) = seen
    assert weights.shape == (shape[0], m.num_branches, shape[1], 1, 1)
    torch.testing.assert_close(weights.sum(1), torch.ones(shape[0], shape[1], 1, 1))


@pytest.mark.parametrize("channels,groups", [(64, 32), (48, 16), (40, 8), (7, 1)])
def test_sk_default_groups_is_the_largest_divisor_up_to_32(channels, groups):
    assert SelectiveKernel(channels).branches[0][0].groups == groups


# ---- split_attn ---------------------------------------------------------------------------

def split_attn_reference(m, x, radix, cardinality):
    """Explicit index loops over cardinal groups and channels, in the official layout."""
    n, c = x.shape[:2]
    r_, k_, cg = radix, cardinality, c // cardinality
    y = F.relu(bn(F.conv2d(x, m.conv.weight, padding=m.conv.padding, groups=k_ * r_), m.bn0))
    gap = sum(y[:, r * c:(r + 1) * c] for r in range(r_)).mean((2, 3), keepdim=True)
    h = F.relu(bn(F.conv2d(gap, m.fc1.weight, m.fc1.bias, groups=k_), m.bn1))
    logits = F.conv2d(h, m.fc2.weight, m.fc2.bias, groups=k_).flatten(1)
    out = torch.zeros_like(x)
    for k in range(k_):
        for j in range(cg):
            v = logits[:, [k * r_ * cg + r * cg + j for r in range(r_)]]
            w = torch.sigmoid(v) if r_ == 1 else torch.exp(v) / torch.exp(v).sum(1, keepdim=True)
            for r in range(r_):
                out[:, k * cg + j] += w[:, r, None, None] * y[:, r * c + k * cg + j]
    return out


@pytest.mark.parametrize("radix,cardinality,channels,shape_hw", [
    (2, 1, 64, (16, 16)), (2, 2, 32, (9, 7)), (4, 2, 32, (5, 6)), (1, 1, 32, (8, 11)),
    (1, 4, 32, (6, 6))])
def test_split_attn_matches_reference(radix, cardinality, channels, shape_hw, close):
    m = build("split_attn", radix=radix, cardinality=cardinality, channels=channels)
    seen = []
    m.rsoftmax.register_forward_hook(lambda mod, inp, out: seen.append((inp[0], out)))
    x = torch.randn(3, channels, *shape_hw)
    close(m(x), split_attn_reference(m, x, radix, cardinality))
    ((logits, weights),) = seen
    assert weights.shape == (3, radix, channels, 1, 1)
    if radix == 1:  # R = 1: a sigmoid gate, not a softmax over one element (which is all 1)
        torch.testing.assert_close(weights.flatten(), torch.sigmoid(logits).flatten())
        assert (weights < 1).all()
    else:
        torch.testing.assert_close(weights.sum(1), torch.ones(3, channels, 1, 1))


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("key,config,match", [
    ("eca", {"kernel_size": 4}, "kernel_size: expected None or an odd int >= 1, got 4"),
    ("eca", {"channels": 0}, "channels: expected an int >= 1, got 0"),
    ("cbam", {"spatial_kernel_size": 6}, "spatial_kernel_size"),
    ("cbam", {"rd_ratio": 2.0}, "rd_ratio"),
    ("bam", {"dilation": 0}, "bam: dilation: expected an int >= 1"),
    ("gc", {"fusion": "concat"}, "fusion: expected one of"),
    ("sk", {"groups": 5}, "groups: expected a divisor of channels = 64, got 5"),
    ("sk", {"num_branches": 0}, "num_branches"),
    ("split_attn", {"channels": 30, "radix": 4}, r"channels: expected a multiple of radix \* cardinality"),
    ("split_attn", {"cardinality": 2, "rd_channels": 33}, "rd_channels must be divisible"),
    ("split_attn", {"radix": 0}, "radix: expected an int >= 1, got 0"),
])
def test_bad_arguments_raise_clear_errors(key, config, match):
    with pytest.raises(AttnDeployError, match=match):
        ad.create(key, **config)


@pytest.mark.parametrize("key", KEYS)
def test_wrong_input_shape_raises(key):
    m = ad.create(key)
    with pytest.raises(AttnDeployError, match=r"x: expected \[N, 64, H, W\], got \[2, 32, 8, 8\]"):
        m(torch.randn(2, 32, 8, 8))
    with pytest.raises(AttnDeployError, match="x: expected"):
        m(torch.randn(64, 8, 8))


# ---- export parity ------------------------------------------------------------------------

def rel_l2(y: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize("key,config", [(k, {}) for k in KEYS] + [
    ("gc", {"fusion": "mul"}), ("split_attn", {"radix": 1}),
    ("split_attn", {"cardinality": 2, "channels": 32})])
def test_export_matches_eager_on_ort_and_reference(key, config, tmp_path):
    m = build(key, **config)
    path = ad.export_block(key, tmp_path / f"{key}.onnx", model=m)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(str(path))
    s = ad.spec(key, **config)
    for dims in ({}, s.alternate_dims()):
        (x,) = ad.example_inputs(key, seed=3, config=config, **dims)
        with torch.no_grad():
            expected = m(x).numpy()
        assert expected.shape == x.shape
        for name, runner in (("onnxruntime", session), ("onnx.reference", reference)):
            (y,) = runner.run(None, {"x": x.numpy()})
            assert np.isfinite(y).all()
            err = rel_l2(y, expected)
            assert err <= s.rtol, f"{key} {config} {dims} {name}: rel L2 {err:.3g}"
