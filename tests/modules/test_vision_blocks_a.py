"""scconv, ann_afnb, ann_apnb, acm, cgnl, glore, spygr, lfb: independent references, argument
errors, and one export per block checked on ONNX Runtime and onnx.reference at two sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn_deploy as ad

KEYS = ["scconv", "ann_afnb", "ann_apnb", "acm", "cgnl", "glore", "spygr", "lfb"]


def _randomize_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine params, so eval-mode BN is not ~identity."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def _create(key: str, **config) -> torch.nn.Module:
    return _randomize_norms(ad.create(key, **config))


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# --- independent references (dense / loop forms, PyTorch's own pooling) ---------------------

def _scconv_ref(m, x):
    r = m.pooling_r
    x1, x2 = x.chunk(2, 1)
    n, c, h, w = x1.shape
    hp, wp = h // r, w // r
    pooled = x1[..., :hp * r, :wp * r].reshape(n, c, hp, r, wp, r).mean((3, 5))
    t = m.k2[1](pooled)
    rows, cols = torch.arange(h) * hp // h, torch.arange(w) * wp // w  # nearest, floor
    t = t[:, :, rows][:, :, :, cols]
    return torch.cat([m.k4(m.k3(x1) * torch.sigmoid(x1 + t)), m.k1(x2)], 1)


def _psp(x, sizes):
    n, c = x.shape[:2]
    return torch.cat([F.adaptive_avg_pool2d(x, s).view(n, c, -1) for s in sizes], -1)


def _ann_context(att, low, high):
    n, _, h, w = high.shape
    value = _psp(att.f_value(low), att.psp_sizes).permute(0, 2, 1)
    key = _psp(att.f_key(low), att.psp_sizes)
    query = att.f_query(high).view(n, att.key_channels, -1).permute(0, 2, 1)
    sim = torch.softmax(torch.matmul(query, key) * att.key_channels ** -0.5, -1)
    context = torch.matmul(sim, value).permute(0, 2, 1).reshape(n, -1, h, w)
    return att.out(context)


def _acm_ref(acm, x):
    s = acm.pool_scale
    pooled = acm.pooled_redu_conv(F.adaptive_avg_pool2d(x, s))
    x = acm.input_redu_conv(x)
    n, c, h, w = x.shape
    pooled = pooled.view(n, c, -1).permute(0, 2, 1)                  # [n, s*s, c]
    g = F.interpolate(acm.global_info(F.adaptive_avg_pool2d(x, 1)), size=(h, w),
                      mode="bilinear", align_corners=False)
    affinity = acm.gla(x + g).permute(0, 2, 3, 1).reshape(n, -1, s * s).sigmoid()
    z = torch.matmul(affinity, pooled).permute(0, 2, 1).reshape(n, c, h, w)
    return acm.fusion_conv(F.relu(acm.residual_conv(z) + x))


def _cgnl_kernel(kind, t, p, order, gamma):
    """Dense f(t_i, p_j) [n, L, L] for the kernel's truncated Taylor form."""
    tp = t[:, :, None] * p[:, None, :]
    if kind == "dot":
        return tp
    c = 2 * gamma if kind == "rbf" else 1.0
    k = sum((c * tp) ** i / math.factorial(i) for i in range(order + 1))
    if kind == "rbf":
        k = k * torch.exp(-gamma * t[:, :, None] ** 2) * torch.exp(-gamma * p[:, None, :] ** 2)
    return k


def _cgnl_ref(m, x):
    t, p, g = m.t(x), m.p(x), m.g(x)
    n, c, h, w = t.shape
    cg = c // m.groups
    out = []
    for i in range(m.groups):
        sl = slice(i * cg, (i + 1) * cg)
        ti, pi, gi = (v[:, sl].reshape(n, -1).double() for v in (t, p, g))
        k = _cgnl_kernel(m.kernel, ti, pi, m.order, m.gamma)
        yi = torch.matmul(k, gi[:, :, None])[..., 0]
        if m.use_scale:
            yi = yi / math.sqrt(ti.shape[1])
        out.append(yi.float().reshape(n, cg, h, w))
    return m.gn(m.z(torch.cat(out, 1))) + x


def _glore_branch(m, x):
    n, _, h, w = x.shape
    state = m.conv_state(x).reshape(n, m.num_state, -1)
    proj = m.conv_proj(x).reshape(n, m.num_node, -1)
    v = torch.einsum("bsl,bnl->bsn", state, proj) / (h * w)
    w1, b1 = m.gcn.node_conv.weight[..., 0], m.gcn.node_conv.bias
    hid = torch.relu(torch.einsum("nm,bsm->bsn", w1, v) + b1 + v)
    v = torch.einsum("ts,bsn->btn", m.gcn.state_conv.weight[..., 0], hid)
    y = torch.einsum("bsn,bnl->bsl", v, proj).reshape(n, -1, h, w)
    return m.norm(m.conv_extend(y))


def _spygr_level_ref(level, x):
    """Dense HW x HW adjacency and Laplacian."""
    n, c, h, w = x.shape
    p = torch.relu(level.phi(x)).flatten(2).double()                          # [n, M, HW]
    lam = torch.sigmoid(level.diag(x.mean((2, 3), keepdim=True)))[:, :, 0, 0].double()
    a = torch.einsum("bmi,bm,bmj->bij", p, lam, p)
    d = torch.diag_embed(a.sum(-1).clamp_min(level.eps).rsqrt())
    lap = torch.eye(h * w, dtype=torch.float64) - d @ a @ d
    lx = (x.flatten(2).double() @ lap.transpose(1, 2)).float()
    return level.theta(lx.reshape(n, c, h, w))


def _spygr_ref(m, x):
    pyramid = [x]
    for _ in range(len(m.levels) - 1):
        y = pyramid[-1]
        n, c, h, w = y.shape
        h2, w2 = h // 2, w // 2
        pyramid.append(y[..., :2 * h2, :2 * w2].reshape(n, c, h2, 2, w2, 2).amax((3, 5)))
    out = None
    for xi, level in zip(reversed(pyramid), reversed(list(m.levels))):
        y = _spygr_level_ref(level, xi)
        if out is not None:
            y = y + F.interpolate(out, size=xi.shape[-2:], mode="bilinear", align_corners=False)
        out = y
    return x + out


def _lfb_ref(m, short, bank):
    s, lb = m.reduce[0](short), m.bank_reduce[0](bank)
    d = s.shape[1]
    for layer in m.layers:
        th, ph, g = layer.theta(s), layer.phi(lb), layer.g(lb)
        outs = []
        for i in range(s.shape[0]):
            a = torch.softmax(th[i].T @ ph[i] / math.sqrt(d), dim=1)        # [Ts, Tl]
            t = a @ g[i].T                                                 # [Ts, D]
            t = (t - t.mean(1, keepdim=True)) / torch.sqrt(t.var(1, False, keepdim=True) + 1e-5)
            outs.append(layer.out(torch.relu(t).T[None])[0])
        s = s + torch.stack(outs)
    return s


# --- tests --------------------------------------------------------------------------------

@torch.no_grad()
@pytest.mark.parametrize("hw", [(14, 14), (17, 17), (13, 22), (4, 4), (5, 9)])
def test_scconv_matches_reference(hw, close):
    m = _create("scconv")
    x = torch.randn(2, 64, *hw)
    close(m(x), _scconv_ref(m, x))


@torch.no_grad()
@pytest.mark.parametrize("hw", [(14, 14), (17, 11), (5, 7)])
def test_ann_blocks_match_reference(hw, close):
    afnb, apnb = _create("ann_afnb"), _create("ann_apnb")
    low, high = torch.randn(2, 32, *hw), torch.randn(2, 64, *hw)
    ctx = _ann_context(afnb.attention, low, high)
    assert ctx.abs().mean() > 0.05  # the attention path is live in the registered block
    close(afnb(low, high), afnb.fuse(torch.cat([ctx, high], 1)))
    assert apnb.attention.f_query is apnb.attention.f_key  # APNB shares key/query
    close(apnb(high), apnb.fuse(torch.cat([_ann_context(apnb.attention, high, high), high], 1)))


def test_ann_official_init_zeroes_output_conv():
    m = ad.create("ann_apnb", zero_init_out=True)
    assert not m.attention.out.weight.any() and not m.attention.out.bias.any()


@torch.no_grad()
@pytest.mark.parametrize("hw", [(14, 14), (17, 13), (3, 5)])
def test_acm_matches_reference(hw, close):
    m = _create("acm")
    x = torch.randn(2, 64, *hw)
    expected = m.bottleneck(torch.cat([x] + [_acm_ref(a, x) for a in m.acms], 1))
    close(m(x), expected)
    assert [a.pool_scale for a in m.acms] == [1, 2, 3, 6]


@torch.no_grad()
@pytest.mark.parametrize("kernel", ["dot", "gaussian", "rbf"])
@pytest.mark.parametrize("use_scale", [False, True])
def test_cgnl_matches_dense_kernel(kernel, use_scale, close):
    m = _create("cgnl", kernel=kernel, use_scale=use_scale, gamma=0.05)
    x = torch.randn(2, 64, 6, 7) * 0.5
    close(m(x), _cgnl_ref(m, x))


@torch.no_grad()
@pytest.mark.parametrize("kernel", ["gaussian", "rbf"])
def test_cgnl_taylor_terms_converge_to_closed_form(kernel):
    m = ad.create("cgnl", kernel=kernel, order=16, gamma=0.3)
    g = torch.Generator().manual_seed(0)
    t = torch.randn(1, 1, 50, generator=g, dtype=torch.float64) * 0.6   # row vector
    p = torch.randn(1, 50, 1, generator=g, dtype=torch.float64) * 0.6   # column vector
    ts, ps = m._terms(t, p)
    approx = sum(a * b for a, b in zip(ts, ps))                         # [1, 50, 50]
    exact = torch.exp(t * p) if kernel == "gaussian" else torch.exp(-0.3 * (t - p) ** 2)
    torch.testing.assert_close(approx, exact, rtol=1e-6, atol=1e-9)


@torch.no_grad()
@pytest.mark.parametrize("hw", [(14, 14), (9, 17)])
def test_glore_matches_einsum_reference(hw, close):
    m = _create("glore")
    x = torch.randn(2, 64, *hw)
    # compare the reasoning branch on its own: the residual would dilute its errors
    close(m(x) - x, _glore_branch(m, x))


@torch.no_grad()
@pytest.mark.parametrize("hw", [(16, 16), (19, 13), (4, 5)])
def test_spygr_matches_dense_laplacian(hw, close):
    m = _create("spygr")
    x = torch.randn(2, 64, *hw)
    close(m(x) - x, _spygr_ref(m, x) - x)


@torch.no_grad()
def test_lfb_matches_loop_reference(close):
    m = ad.create("lfb")
    short, bank = torch.randn(3, 64, 5), torch.randn(3, 64, 11)
    close(m(short, bank), _lfb_ref(m, short, bank))
    assert m.training is False


@pytest.mark.parametrize("key, kwargs, match", [
    ("scconv", {"channels": 63}, "channels"),
    ("scconv", {"groups": 3}, "groups"),
    ("scconv", {"pooling_r": 0}, "pooling_r"),
    ("ann_afnb", {"psp_sizes": ()}, "psp_sizes"),
    ("ann_apnb", {"psp_sizes": (1, 0)}, "psp_sizes"),
    ("ann_apnb", {"key_channels": 0}, "key_channels"),
    ("acm", {"pool_scales": (1, 2.5)}, "pool_scales"),
    ("acm", {"fuse_kernel": 2}, "fuse_kernel"),
    ("cgnl", {"kernel": "poly"}, "kernel"),
    ("cgnl", {"groups": 3}, "groups"),
    ("cgnl", {"kernel": "gaussian", "order": 0}, "order"),
    ("cgnl", {"kernel": "rbf", "gamma": 0.0}, "gamma"),
    ("glore", {"rd_ratio": 0.0}, "rd_ratio"),
    ("spygr", {"levels": 0}, "levels"),
    ("lfb", {"latent": 0}, "latent"),
    ("lfb", {"dropout": 1.0}, "dropout"),
])
def test_bad_arguments(key, kwargs, match):
    with pytest.raises(ad.AttnDeployError, match=match):
        ad.create(key, **kwargs)


@pytest.mark.parametrize("key, inputs, match", [
    ("scconv", (torch.randn(1, 64, 3, 8),), "pooling_r"),
    ("spygr", (torch.randn(1, 64, 3, 9),), "H, W >= 4"),
    ("glore", (torch.randn(64, 8, 8),), r"\[N, 64, H, W\]"),
    ("lfb", (torch.randn(2, 64, 4), torch.randn(3, 64, 9)), "same N"),
])
def test_bad_inputs(key, inputs, match):
    with pytest.raises(ad.AttnDeployError, match=match):
        ad.create(key)(*inputs)


@pytest.mark.parametrize("key, config", [pytest.param(k, {}, id=k) for k in KEYS]
                         + [pytest.param("cgnl", {"kernel": "rbf"}, id="cgnl-rbf")])
def test_export_matches_eager_at_two_sizes(key, config, tmp_path):
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    model = _create(key, **config)
    path = ad.export_block(key, tmp_path / f"{key}.onnx", model=model)
    spec = ad.spec(key, **config)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(str(path))
    for dims in ({}, spec.alternate_dims()):
        xs = ad.example_inputs(key, seed=3, config=config, **dims)
        with torch.no_grad():
            expected = model(*xs).numpy()
        feeds = {name: x.numpy() for name, x in zip(spec.inputs, xs)}
        for runner in (session, reference):
            (got,) = runner.run(None, feeds)
            assert got.shape == expected.shape, (dims, got.shape)
            assert _rel(got, expected) <= spec.rtol, (type(runner).__name__, dims)
    if key == "scconv":  # nearest Resize vs F.interpolate at many sizes, divisible by 4 or not
        g = torch.Generator().manual_seed(0)
        for h in range(4, 41):
            x = torch.randn(1, 64, h, 4 + (7 * h) % 37, generator=g)
            with torch.no_grad():
                expected = model(x).numpy()
            assert _rel(session.run(None, {"x": x.numpy()})[0], expected) <= 1e-5, x.shape
