"""Non-local family: non_local (4 modes), a2, danet_pam, danet_cam, danet, sagan.

Each block is checked against a reference written here with explicit per-position (or
per-channel / per-descriptor) loops and its own pooling, on odd and non-square sizes, in float64,
with every parameter and BN statistic set to random values (the paper inits, BN scale 0 and
gamma 0, would make the blocks identities and hide errors). Then each exported ONNX model is run
by ONNX Runtime and onnx.reference at the default and the alternate dims.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError

MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")
SHAPES = ((2, 3, 5), (1, 4, 2))  # (N, H, W): odd, non-square, and even


def randomize(m: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
        for name, b in m.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g, dtype=b.dtype) + 0.5)
    return m.eval()


def conv1x1(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    y = torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], x)
    return y if conv.bias is None else y + conv.bias.view(1, -1, 1, 1)


def pool2x2(t: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 2, a trailing odd row/column kept as its own window."""
    n, c, h, w = t.shape
    h2, w2 = -(-h // 2) * 2, -(-w // 2) * 2
    padded = torch.full((n, c, h2, w2), -torch.inf, dtype=t.dtype)
    padded[:, :, :h, :w] = t
    return padded.reshape(n, c, h2 // 2, 2, w2 // 2, 2).amax(dim=(3, 5))


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- references ----------------------------------------------------------------------------
def ref_non_local(m, x):
    pool = pool2x2 if m.sub_sample else (lambda t: t)
    if m.mode == "gaussian":
        q, k = x, pool(x)
    else:
        q, k = conv1x1(m.theta, x), pool(conv1x1(m.phi, x))
    v = pool(conv1x1(m.g, x))
    n_, _, h, w = x.shape
    q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
    y = torch.zeros(n_, v.shape[1], h * w, dtype=x.dtype)
    for n in range(n_):
        for i in range(h * w):
            if m.mode == "concatenation":  # the paper's literal form: w_f . [theta_i; phi_j]
                pairs = torch.cat([q[n, :, i:i + 1].expand_as(k[n]), k[n]], dim=0)
                f = torch.relu(m.concat_project.weight.flatten() @ pairs) / k.shape[-1]
            else:
                dots = q[n, :, i] @ k[n]
                f = dots / k.shape[-1] if m.mode == "dot_product" else dots.exp() / dots.exp().sum()
            y[n, :, i] = (v[n] * f).sum(dim=1)
    wy = conv1x1(m.w_z, y.reshape(n_, -1, h, w))
    bn = m.bn
    wy = ((wy - bn.running_mean.view(1, -1, 1, 1)) / (bn.running_var.view(1, -1, 1, 1)
          + bn.eps).sqrt() * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    return wy + x


def ref_a2(m, x):
    n_, c, h, w = x.shape
    a, b, v = (conv1x1(cv, x).flatten(2) for cv in (m.conv_a, m.conv_b, m.conv_v))
    z = torch.zeros(n_, a.shape[1], h * w, dtype=x.dtype)
    for n in range(n_):
        descriptors = [(a[n] * torch.softmax(b[n, d], 0)).sum(1) for d in range(b.shape[1])]
        for p in range(h * w):
            weights = torch.softmax(v[n, :, p], 0)
            z[n, :, p] = sum(wd * dd for wd, dd in zip(weights, descriptors))
    return conv1x1(m.proj, z.reshape(n_, -1, h, w)) + x


def ref_pam(m, x):
    n_, c, h, w = x.shape
    q, k, v = (conv1x1(cv, x).flatten(2) for cv in (m.query, m.key, m.value))
    out = torch.zeros(n_, c, h * w, dtype=x.dtype)
    for n in range(n_):
        for i in range(h * w):
            s = torch.softmax(q[n, :, i] @ k[n], 0)
            out[n, :, i] = (v[n] * s).sum(1)
    return m.gamma * out.reshape(x.shape) + x


def ref_cam(m, x):
    n_, c, h, w = x.shape
    a = x.flatten(2)
    out = torch.zeros_like(a)
    for n in range(n_):
        for i in range(c):
            energy = torch.stack([a[n, i] @ a[n, j] for j in range(c)])
            att = torch.softmax(energy.max() - energy, 0)
            out[n, i] = (a[n] * att[:, None]).sum(0)
    return m.gamma * out.reshape(x.shape) + x


def ref_sagan(m, x):
    pool = pool2x2 if m.pool else (lambda t: t)
    n_, c, h, w = x.shape
    q = conv1x1(m.f, x).flatten(2)
    k, val = pool(conv1x1(m.g, x)).flatten(2), pool(conv1x1(m.h, x)).flatten(2)
    o = torch.zeros(n_, val.shape[1], h * w, dtype=x.dtype)
    for n in range(n_):
        for j in range(h * w):
            beta = torch.softmax(q[n, :, j] @ k[n], 0)
            o[n, :, j] = (val[n] * beta).sum(1)
    return m.gamma * conv1x1(m.v, o.reshape(n_, -1, h, w)) + x


CASES = (
    [("non_local", dict(channels=8, mode=md, sub_sample=ss), ref_non_local)
     for md in MODES for ss in (False, True)]
    + [("a2", dict(channels=16), ref_a2), ("a2", dict(channels=16, num_descriptors=3), ref_a2),
       ("danet_pam", dict(channels=16), ref_pam), ("danet_cam", dict(channels=16), ref_cam),
       ("danet", dict(channels=16), lambda m, x: ref_pam(m.pam, x) + ref_cam(m.cam, x)),
       ("sagan", dict(channels=16), ref_sagan), ("sagan", dict(channels=16, pool=False), ref_sagan)]
)


@pytest.mark.parametrize("key,cfg,ref", CASES, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_loop_reference(key, cfg, ref, shape):
    m = randomize(ad.create(key, **cfg), seed=3).double()
    n, h, w = shape
    x = torch.randn(n, cfg["channels"], h, w, generator=torch.Generator().manual_seed(7),
                    dtype=torch.float64)
    with torch.no_grad():
        y, r = m(x), ref(m, x)
    assert y.shape == x.shape
    assert rel_l2(y - x, r - x) < 1e-10  # compare the attention path, not the residual


@pytest.mark.parametrize("key,method,dim", [
    ("danet_pam", "attention", -1), ("danet_cam", "attention", -1), ("sagan", "attention", -1)])
def test_softmax_rows_sum_to_one(key, method, dim):
    m = randomize(ad.create(key), seed=1)
    x, = ad.example_inputs(key, seed=2, H=5, W=7)
    with torch.no_grad():
        s = getattr(m, method)(x)
    assert torch.allclose(s.sum(dim), torch.ones(()), atol=1e-5)
    assert (s >= 0).all()


@pytest.mark.parametrize("mode,ss", [(md, ss) for md in MODES for ss in (False, True)])
def test_non_local_affinity_normalisation(mode, ss):
    m = randomize(ad.create("non_local", mode=mode, sub_sample=ss), seed=1)
    x, = ad.example_inputs("non_local", seed=2, H=5, W=7)
    with torch.no_grad():
        f = m.affinity(x)
    positions = 3 * 4 if ss else 5 * 7
    assert f.shape == (2, 35, positions)
    if mode in ("embedded_gaussian", "gaussian"):
        assert torch.allclose(f.sum(-1), torch.ones(()), atol=1e-5)
    else:  # normalised by the number of positions, so rows do not sum to 1
        assert not torch.allclose(f.sum(-1), torch.ones(()), atol=1e-2)


def test_a2_attention_normalisation():
    m = randomize(ad.create("a2", num_descriptors=5), seed=1)
    x, = ad.example_inputs("a2", seed=2, H=5, W=7)
    with torch.no_grad():
        gather, distribute = m.attention(x)
    assert gather.shape == distribute.shape == (2, 5, 35)
    assert torch.allclose(gather.sum(-1), torch.ones(()), atol=1e-5)      # over positions
    assert torch.allclose(distribute.sum(1), torch.ones(()), atol=1e-5)   # over descriptors


@pytest.mark.parametrize("key,cfg", [
    ("non_local", {"bn_weight_init": 0.0}), ("danet_pam", {"gamma_init": 0.0}),
    ("danet_cam", {"gamma_init": 0.0}), ("danet", {"gamma_init": 0.0}),
    ("sagan", {"gamma_init": 0.0})])
def test_paper_init_is_identity(key, cfg):
    m = ad.create(key, **cfg)
    x, = ad.example_inputs(key, seed=4, config=cfg)
    with torch.no_grad():
        y = m(x)
    expected = 2 * x if key == "danet" else x  # danet sums two residual branches
    assert torch.allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("key,kwargs,match", [
    ("non_local", {"mode": "bilinear"}, "mode"),
    ("non_local", {"rd_ratio": 0.0}, "rd_ratio"),
    ("a2", {"num_descriptors": 0}, "num_descriptors"),
    ("a2", {"rd_channels": 0}, "rd_channels"),
    ("danet_pam", {"channels": 0}, "channels"),
    ("sagan", {"value_ratio": 1.5}, "value_ratio"),
    ("danet_cam", {"rd_ratio": 0.5}, "unknown argument"),
])
def test_bad_arguments(key, kwargs, match):
    with pytest.raises(AttnDeployError, match=match):
        ad.create(key, **kwargs)


@pytest.mark.parametrize("key", ["non_local", "a2", "danet_pam", "danet_cam", "danet", "sagan"])
@pytest.mark.parametrize("bad", [(2, 7, 8, 8), (2, 32)])
def test_bad_input_shape(key, bad):
    m = ad.create(key)
    with pytest.raises(AttnDeployError, match=r"x: expected \[N, \d+, H, W\]"):
        m(torch.randn(bad))


EXPORT_CASES = (
    [("non_local", {"mode": md}) for md in MODES]
    + [("non_local", {"mode": "gaussian", "sub_sample": True})]  # pools x itself and g(x)
    + [(k, {}) for k in ("a2", "danet_pam", "danet_cam", "danet", "sagan")]
)


@pytest.mark.parametrize("key,cfg", EXPORT_CASES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(str(x) for x in v.values()) or "default")
def test_export_parity(key, cfg, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from onnx.reference import ReferenceEvaluator

    m = randomize(ad.create(key, **cfg), seed=5)
    path = ad.export_block(key, tmp_path / f"{key}.onnx", model=m)
    runners = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
               ReferenceEvaluator(str(path)))
    for dims in ({}, ad.spec(key, **cfg).alternate_dims()):
        x, = ad.example_inputs(key, seed=11, config=cfg, **dims)
        with torch.no_grad():
            ref = m(x).numpy()
        for runner in runners:
            y, = runner.run(None, {"x": x.numpy()})
            assert y.shape == ref.shape
            assert np.isfinite(y).all()
            # the attention path alone, a stricter measure than the output with its residual
            assert rel_l2(y - x.numpy(), ref - x.numpy()) <= 1e-5, (type(runner), dims)
