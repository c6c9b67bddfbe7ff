"""generalized_attention, local_relation, sasa, san, dgmn, co_attention, can_cross_attention,
context_transformer: the local-window helper against F.unfold, each block against an
independent reference (F.unfold, explicit bilinear sampling, dense matrices, loops), every mode,
argument errors, and one export per block checked on ONNX Runtime and onnx.reference at two
sizes (non-default configs, so that together with test_blocks.py both paths are exported)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attn_deploy as ad
from attn_deploy.modules._local_windows import local_windows, window_offsets, window_validity


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _unfold(x, k, dilation=1, reflect=False):
    """[N, C, k*k, H, W] by F.unfold (the eager reference for local windows)."""
    n, c, h, w = x.shape
    pad = dilation * (k // 2)
    if reflect:
        x, pad = F.pad(x, (pad,) * 4, mode="reflect"), 0
    return F.unfold(x, k, dilation=dilation, padding=pad).reshape(n, c, k * k, h, w)


# --- local windows ----------------------------------------------------------------------------

@pytest.mark.parametrize("k, d, shape", [(1, 1, (1, 2, 5, 4)), (3, 1, (2, 3, 6, 9)),
                                         (5, 2, (1, 4, 7, 5)), (7, 1, (2, 2, 12, 11))])
def test_local_windows_equal_unfold(k, d, shape):
    x = torch.randn(shape)
    last = lambda t: t.permute(0, 1, 3, 4, 2)   # unfold's window axis 2 -> our axis -1
    assert torch.equal(local_windows(x, k, d), last(_unfold(x, k, d)))
    valid = _unfold(torch.ones(1, 1, *shape[2:]), k, d) > 0
    assert torch.equal(window_validity(x, k, d), last(valid))
    if shape[2] > d * (k // 2) and shape[3] > d * (k // 2):
        assert torch.equal(local_windows(x, k, d, "reflect"), last(_unfold(x, k, d, True)))
    # window position i*k + j sits at offset (i - r, j - r) * d, as window_offsets says
    r = k // 2
    expected = [[(i - r) * d, (j - r) * d] for i in range(k) for j in range(k)]
    assert window_offsets(k, d).tolist() == expected


def test_local_windows_bad_arguments():
    x = torch.randn(1, 2, 3, 3)
    with pytest.raises(ad.AttnDeployError, match="odd"):
        local_windows(x, 4)
    with pytest.raises(ad.AttnDeployError, match="padding_mode"):
        local_windows(x, 3, padding_mode="circular")
    with pytest.raises(ad.AttnDeployError, match="reflect"):
        local_windows(x, 7, padding_mode="reflect")


# --- sasa ---------------------------------------------------------------------------------------

def _sasa_ref(m, x):
    n, _, h, w = x.shape
    heads, d, k = m.num_heads, m.head_dim, m.kernel_size
    q = m.query(x).reshape(n, heads, d, h * w)
    keys = _unfold(m.key(x), k).reshape(n, heads, d, k, k, h * w)
    vals = _unfold(m.value(x), k).reshape(n, heads, d, k * k, h * w)
    half = d // 2
    logits = torch.einsum("nhdp,nhdabp->nhabp", q, keys)
    logits = logits + torch.einsum("nhdp,hda->nhap", q[:, :, :half], m.rel_row)[:, :, :, None]
    logits = logits + torch.einsum("nhdp,hdb->nhbp", q[:, :, half:], m.rel_col)[:, :, None]
    inside = _unfold(torch.ones(1, 1, h, w), k).reshape(1, 1, k * k, h * w) > 0
    logits = logits.reshape(n, heads, k * k, h * w).masked_fill(~inside, -math.inf)
    out = torch.einsum("nhap,nhdap->nhdp", logits.softmax(2), vals)
    return out.reshape(n, heads * d, h, w)


@pytest.mark.parametrize("config, hw", [({"channels": 8}, (12, 12)),
                                        ({"channels": 6, "kernel_size": 3, "num_heads": 2,
                                          "out_channels": 8}, (5, 9))])
def test_sasa_matches_unfold_reference(config, hw, close):
    m = ad.create("sasa", **config)
    x = torch.randn(2, config["channels"], *hw)
    with torch.no_grad():
        close(m(x), _sasa_ref(m, x))


# --- local_relation -----------------------------------------------------------------------------

def _lr_ref(m, x):
    n, c, h, w = x.shape
    k, g = m.kernel_size, m.groups
    q = m.query(x).reshape(n, g, 1, h * w)
    keys = _unfold(m.key(x), k).reshape(n, g, k * k, h * w)
    phi = {"squared_difference": lambda a, b: -(a - b) ** 2,
           "absolute_difference": lambda a, b: -(a - b).abs(),
           "product": lambda a, b: a * b}[m.composability](q, keys)
    l1, l2 = m.geometry[0], m.geometry[2]
    prior = torch.stack([l2.weight[:, :, 0, 0] @ torch.relu(l1.weight[:, :, 0, 0] @ off
                                                             + l1.bias) + l2.bias
                         for off in window_offsets(k)], 1)          # [G, k*k]
    inside = _unfold(torch.ones(1, 1, h, w), k).reshape(1, 1, k * k, h * w) > 0
    weights = (phi + prior[None, :, :, None]).masked_fill(~inside, -math.inf).softmax(2)
    vals = _unfold(x, k).reshape(n, g, c // g, k * k, h * w)
    return torch.einsum("ngap,ngcap->ngcp", weights, vals).reshape(n, c, h, w)


@pytest.mark.parametrize("composability", ["squared_difference", "absolute_difference",
                                           "product"])
@pytest.mark.parametrize("k, hw", [(7, (10, 12)), (3, (4, 7))])
def test_local_relation_matches_unfold_reference(composability, k, hw, close):
    m = ad.create("local_relation", channels=16, kernel_size=k, composability=composability)
    x = torch.randn(2, 16, *hw)
    with torch.no_grad():
        close(m(x), _lr_ref(m, x))


# --- san ----------------------------------------------------------------------------------------

def _san_ref(m, x):
    """The official SAN formulation: reflection-padded F.unfold and linspace coordinates."""
    n, _, h, w = x.shape
    k, wc, out = m.kernel_size, m.weight_channels, m.out_channels
    x1, x2, x3 = m.phi(x), m.psi(x), m.beta(x)
    if m.mode == "pairwise":
        loc = torch.stack([torch.linspace(-1, 1, w)[None].repeat(h, 1),
                           torch.linspace(-1, 1, h)[:, None].repeat(1, w)])[None]
        p = m.position(loc)
        sub = lambda a: a.reshape(*a.shape[:2], 1, h * w) - _unfold(a, k, reflect=True).flatten(3)
        rel = torch.cat([x1.reshape(n, -1, 1, h * w) - _unfold(x2, k, reflect=True).flatten(3),
                         sub(p).repeat(n, 1, 1, 1)], 1)
        weights = m.gamma(rel).softmax(2)
    else:
        patch = torch.cat([x1.reshape(n, -1, 1, h * w),
                           _unfold(x2, k, reflect=True).reshape(n, -1, 1, h * w)], 1)
        weights = m.gamma(patch).reshape(n, wc, k * k, h * w)
    vals = _unfold(x3, k, reflect=True).reshape(n, out // wc, wc, k * k, h * w)
    return (weights.unsqueeze(1) * vals).sum(3).reshape(n, out, h, w)


@pytest.mark.parametrize("mode", ["pairwise", "patchwise"])
@pytest.mark.parametrize("k, hw", [(7, (12, 9)), (3, (2, 5))])
def test_san_matches_official_formulation(mode, k, hw, randomize_norms, close):
    m = randomize_norms(ad.create("san", channels=32, kernel_size=k, mode=mode))
    x = torch.randn(2, 32, *hw)
    with torch.no_grad():
        close(m(x), _san_ref(m, x))


# --- generalized_attention ----------------------------------------------------------------------

def _ga_ref(m, x):
    """Dense form of the paper's four terms: every (query, key) pair's offset encoded directly."""
    x = x.double()
    n, c, h, w = x.shape
    s, heads, d = m.kv_stride, m.num_heads, m.head_dim
    xk = x[:, :, ::s, ::s]
    hk, wk = xk.shape[-2:]
    dy = torch.arange(h, dtype=torch.float64)[:, None] - s * torch.arange(hk)[None]    # [H, Hk]
    dx = torch.arange(w, dtype=torch.float64)[:, None] - s * torch.arange(wk)[None]    # [W, Wk]
    quarter = m.pos_dim // 4
    freq = 1000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)

    def embed(diff, fc):
        a = diff[..., None] * m.magnitude / freq
        return torch.cat([a.sin(), a.cos()], -1) @ fc.weight.double().t() / math.sqrt(2)

    # R[i, x, j, y] = fc_y(emb(dy[i, j])) + fc_x(emb(dx[x, y]))
    energy = torch.zeros(n, heads, h, w, hk, wk, dtype=torch.float64)
    conv = lambda layer, t: F.conv2d(t, layer.weight.double())
    if m.query_pos or m.pos_bias:
        r = (embed(dy, m.pos_y)[:, None, :, None] + embed(dx, m.pos_x)[None, :, None, :])
        r = r.reshape(h, w, hk, wk, heads, d)
    if m.content or m.query_pos:
        q = conv(m.query, x).reshape(n, heads, d, h, w)
    if m.content or m.saliency:
        k = conv(m.key, xk).reshape(n, heads, d, hk, wk)
    if m.content:
        energy += torch.einsum("nhdij,nhdab->nhijab", q, k)
    if m.query_pos:
        energy += torch.einsum("nhdij,ijabhd->nhijab", q, r)
    if m.saliency:
        energy += torch.einsum("hd,nhdab->nhab", m.appr_bias.double().reshape(heads, d),
                               k)[:, :, None, None]
    if m.pos_bias:
        energy += torch.einsum("hd,ijabhd->hijab", m.geom_bias.double().reshape(heads, d), r)
    attn = energy.reshape(n, heads, h * w, hk * wk).softmax(-1)
    v = conv(m.value, xk).reshape(n, heads, d, hk * wk)
    out = torch.einsum("nhqk,nhdk->nhdq", attn, v).reshape(n, c, h, w)
    out = F.conv2d(out, m.proj.weight.double(), m.proj.bias.double())
    return (m.gamma.double() * out + x).float()


@pytest.mark.parametrize("attention_type", ["1000", "0100", "0010", "0001", "1111", "0110"])
@pytest.mark.parametrize("kv_stride, hw, magnitude", [(2, (7, 10), 1.0), (1, (5, 6), 0.5),
                                                      (3, (9, 8), 2.0)])
def test_generalized_attention_terms_match_dense_reference(attention_type, kv_stride, hw,
                                                           magnitude, close):
    m = ad.create("generalized_attention", channels=16, num_heads=2, kv_stride=kv_stride,
                  attention_type=attention_type, position_magnitude=magnitude)
    with torch.no_grad():
        m.proj.bias.normal_()
    x = torch.randn(2, 16, *hw)
    with torch.no_grad():
        close(m(x), _ga_ref(m, x))


def test_generalized_attention_key_saliency_alone_ignores_the_query():
    m = ad.create("generalized_attention", channels=16, num_heads=2, attention_type="0010")
    x = torch.randn(2, 16, 6, 7)
    with torch.no_grad():
        delta = m(x) - x
    assert torch.allclose(delta, delta[:, :, :1, :1].expand_as(delta), atol=1e-6)
    assert delta.abs().max() > 1e-3


def test_paper_init_of_gamma_and_scale_is_identity():
    x = torch.randn(2, 16, 6, 6)
    ga = ad.create("generalized_attention", channels=16, gamma_init=0.0)
    ct = ad.create("context_transformer", channels=8, num_priors=2, scale_init=0.0)
    with torch.no_grad():
        assert torch.equal(ga(x), x) and torch.equal(ct(x), x)


# --- dgmn ---------------------------------------------------------------------------------------

def _bilinear(x, py, px):
    """Sample x [N, C, H, W] at float pixel positions py, px [N, P] (zeros outside)."""
    n, c, h, w = x.shape
    out = torch.zeros(n, c, py.shape[1], dtype=x.dtype)
    y0, x0 = py.floor(), px.floor()
    for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        wgt = (1 - (py - yy).abs()) * (1 - (px - xx).abs())
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long()
        vals = torch.gather(x.flatten(2), 2, idx[:, None].expand(n, c, -1))
        out += vals * (wgt * inside)[:, None]
    return out


def _dgmn_ref(m, x):
    """Explicit bilinear sampling per node and the deformable conv as a sum over (c, node)."""
    n, c, h, w = x.shape
    k, g = m.nodes, m.groups
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype),
                            indexing="ij")
    out = x.clone()
    for s, (off_conv, kernel_conv) in enumerate(zip(m.offset_convs, m.kernel_convs)):
        off = off_conv(x)
        base = m.base_offsets[0, s * k:(s + 1) * k, :, 0, 0]
        nodes = torch.stack([_bilinear(x, (ys + base[j, 0] + off[:, 2 * j]).flatten(1),
                                       (xs + base[j, 1] + off[:, 2 * j + 1]).flatten(1))
                             for j in range(k)], 2)                       # [N, C, K, H*W]
        weight = kernel_conv.weight.reshape(-1, c, k)                     # [(G+1)K, C, K]
        pred = torch.einsum("ocj,ncjp->nop", weight, nodes)
        filters, affinity = pred[:, :g * k].reshape(n, g, k, -1), pred[:, g * k:].softmax(1)
        msg = 0
        for j in range(k):
            wj = (filters[:, :, j] * affinity[:, None, j]).repeat_interleave(c // g, 1)
            msg = msg + wj * nodes[:, :, j]
        out = out + m.gammas[s] * msg.reshape(n, c, h, w)
    return out


@pytest.mark.parametrize("config, hw", [({}, (9, 11)),
                                        ({"dilations": (2,), "weight_groups": 8}, (6, 5)),
                                        ({"kernel_size": 1, "dilations": (1, 2)}, (4, 4))])
def test_dgmn_matches_explicit_bilinear_sampling(config, hw, close):
    m = ad.create("dgmn", channels=8, **config)
    with torch.no_grad():
        m.gammas.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, *hw)
    with torch.no_grad():
        close(m(x), _dgmn_ref(m, x))


def test_dgmn_without_offsets_is_a_dilated_conv_on_the_grid(close):
    """Offsets forced to 0: the nodes are a dilated F.unfold of x and the 1x1 kernel conv on
    them is the plain dilated 3x3 conv with the same weights (the deformable-conv layout)."""
    m = ad.create("dgmn", channels=4, dilations=(2,), weight_groups=2)
    k = m.nodes
    with torch.no_grad():
        m.offset_convs[0].weight.zero_()
    x = torch.randn(1, 4, 7, 6)
    with torch.no_grad():
        off = m.offset_convs[0](x).reshape(1, k, 2, 7, 6)
        nodes = F.grid_sample(x, m.sampling_grid(x, off), align_corners=False)
        nodes = nodes.reshape(1, 4, k, 7, 6)
        assert torch.allclose(nodes, _unfold(x, 3, 2), atol=1e-6)
        weight = m.kernel_convs[0].weight.reshape(-1, 4, 3, 3)
        close(m.kernel_convs[0](nodes.reshape(1, 4 * k, 7, 6)),
               F.conv2d(x, weight, padding=2, dilation=2))


# --- co_attention -------------------------------------------------------------------------------

def _co_ref(m, fa, fb):
    n, c, h, w = fa.shape
    if m.mode == "vanilla":
        wmat = m.weight.weight
    elif m.mode == "symmetric":
        p = m.project.weight
        wmat = p.t() @ torch.diag(m.diag) @ p
    else:
        wmat = torch.diag(m.diag)
    outs = ([], [])
    for i in range(n):
        a, b = fa[i].reshape(c, -1).double(), fb[i].reshape(c, -1).double()
        s = b.t() @ wmat.double() @ a                                   # [HW_b, HW_a]
        outs[0].append((b @ s.softmax(0)).float().reshape(c, h, w))
        outs[1].append((a @ s.t().softmax(0)).float().reshape(c, h, w))
    gate = lambda z: z * torch.sigmoid(m.gate(z))
    return gate(torch.stack(outs[0])), gate(torch.stack(outs[1]))


@pytest.mark.parametrize("mode", ["vanilla", "symmetric", "channel"])
def test_co_attention_matches_dense_matrices(mode, close):
    m = ad.create("co_attention", channels=8, mode=mode)
    fa, fb = torch.randn(2, 8, 5, 7), torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        got, expected = m(fa, fb), _co_ref(m, fa, fb)
        for g, e in zip(got, expected):
            close(g, e)
        if mode != "vanilla":   # W symmetric: swapping the frames swaps the outputs
            swapped = m(fb, fa)
            close(swapped[0], got[1])
            close(swapped[1], got[0])


# --- can_cross_attention ------------------------------------------------------------------------

def _can_ref(m, p, q):
    n, c, h, w = p.shape
    pf, qf = p.flatten(2), q.flatten(2)
    r = F.cosine_similarity(pf[:, :, :, None], qf[:, :, None, :], dim=1, eps=1e-12)  # [N, mp, mq]
    l1, l2 = m.meta_learner[0], m.meta_learner[2]

    def attend(corr):
        kernel = l2(torch.relu(l1(corr.mean(1))))
        return (torch.einsum("nij,nj->ni", corr, kernel) / corr.shape[2] / m.temperature).softmax(1)

    return (p * (1 + attend(r).reshape(n, 1, h, w)),
            q * (1 + attend(r.transpose(1, 2)).reshape(n, 1, h, w)))


@pytest.mark.parametrize("config", [{}, {"height": 5, "width": 3, "temperature": 1.0}])
def test_can_cross_attention_matches_reference(config, close):
    m = ad.create("can_cross_attention", channels=8, **config)
    h, w = m.size
    p, q = torch.randn(3, 8, h, w), torch.randn(3, 8, h, w)
    with torch.no_grad():
        for got, expected in zip(m(p, q), _can_ref(m, p, q)):
            close(got, expected)


# --- context_transformer ------------------------------------------------------------------------

def _ct_ref(m, x):
    n, ac, h, w = x.shape
    c = m.channels

    def boxes(t):  # [N, A*C, h, w] -> [N, h*w*A, C]
        return t.reshape(n, ac // c, c, *t.shape[2:]).permute(0, 3, 4, 1, 2).reshape(n, -1, c)

    fields = []
    for s in m.pool_sizes:  # max over each s x s cell, the last ones clipped (ceil mode)
        hs, ws = -(-h // s), -(-w // s)
        cell = lambda i, j: x[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s].amax((2, 3))
        pooled = torch.stack([torch.stack([cell(i, j) for j in range(ws)], -1)
                              for i in range(hs)], -2)
        fields.append(boxes(pooled))
    pr, fq = boxes(x), torch.cat(fields, 1)
    emb = lambda fc, t: t @ fc.weight.t() + fc.bias + t
    attn = torch.softmax(emb(m.theta, pr) @ emb(m.phi, fq).transpose(1, 2), -1)
    out = pr + (attn @ emb(m.g, fq)) * m.scale
    return out.reshape(n, h, w, ac).permute(0, 3, 1, 2)


@pytest.mark.parametrize("config, hw", [({}, (12, 12)), ({"pool_sizes": (1, 4), "num_priors": 1},
                                                         (7, 10))])
def test_context_transformer_matches_reference(config, hw, close):
    m = ad.create("context_transformer", **config)
    x = torch.randn(2, m.num_priors * m.channels, *hw)
    with torch.no_grad():
        close(m(x), _ct_ref(m, x))


# --- argument and input errors ------------------------------------------------------------------

@pytest.mark.parametrize("key, kwargs, match", [
    ("generalized_attention", {"attention_type": "0000"}, "attention_type"),
    ("generalized_attention", {"attention_type": "11"}, "attention_type"),
    ("generalized_attention", {"num_heads": 5}, "num_heads"),
    ("generalized_attention", {"position_embedding_dim": 6}, "position_embedding_dim"),
    ("generalized_attention", {"kv_stride": 0}, "kv_stride"),
    ("local_relation", {"channel_sharing": 5}, "channel_sharing"),
    ("local_relation", {"kernel_size": 4}, "kernel_size"),
    ("local_relation", {"composability": "dot"}, "composability"),
    ("sasa", {"num_heads": 3}, "num_heads"),
    ("sasa", {"channels": 8, "num_heads": 8}, "even"),
    ("sasa", {"kernel_size": 2}, "kernel_size"),
    ("san", {"mode": "both"}, "mode"),
    ("san", {"share_planes": 5}, "share_planes"),
    ("san", {"kernel_size": 0}, "kernel_size"),
    ("dgmn", {"weight_groups": 5}, "weight_groups"),
    ("dgmn", {"weight_groups": 0}, "weight_groups"),
    ("dgmn", {"dilations": ()}, "dilations"),
    ("dgmn", {"kernel_size": 2}, "kernel_size"),
    ("co_attention", {"mode": "dense"}, "mode"),
    ("can_cross_attention", {"height": 0}, "height"),
    ("can_cross_attention", {"rd_ratio": 0.0}, "rd_ratio"),
    ("can_cross_attention", {"temperature": 0.0}, "temperature"),
    ("context_transformer", {"pool_sizes": ()}, "pool_sizes"),
    ("context_transformer", {"num_priors": 0}, "num_priors"),
])
def test_bad_arguments(key, kwargs, match):
    with pytest.raises(ad.AttnDeployError, match=match):
        ad.create(key, **kwargs)


@pytest.mark.parametrize("key, inputs, match", [
    ("generalized_attention", (torch.randn(1, 16, 6, 6),), r"x: expected \[N, 32, H, W\]"),
    ("local_relation", (torch.randn(32, 6, 6),), r"x: expected"),
    ("sasa", (torch.randn(1, 31, 6, 6),), r"x: expected"),
    ("san", (torch.randn(1, 32, 3, 8),), "H and W > 3"),
    ("dgmn", (torch.randn(1, 8, 6, 6),), r"x: expected"),
    ("co_attention", (torch.randn(1, 32, 4, 4), torch.randn(1, 32, 4, 5)), "same shape"),
    ("co_attention", (torch.randn(1, 32, 4, 4), torch.randn(1, 16, 4, 4)), "fb: expected"),
    ("can_cross_attention", (torch.randn(1, 32, 6, 6), torch.randn(1, 32, 7, 6)),
     r"q: expected \[N, 32, 6, 6\]"),
    ("can_cross_attention", (torch.randn(1, 32, 6, 6), torch.randn(2, 32, 6, 6)), "batch"),
    ("context_transformer", (torch.randn(1, 16, 6, 6),), r"num_priors 3 x channels 16"),
])
def test_bad_inputs(key, inputs, match):
    with pytest.raises(ad.AttnDeployError, match=match):
        ad.create(key)(*inputs)


# --- export: one file per block, ORT and onnx.reference at two sizes --------------------------

EXPORT_CONFIGS = [
    ("generalized_attention", {"attention_type": "0101", "kv_stride": 1, "num_heads": 2}),
    ("local_relation", {"composability": "absolute_difference", "kernel_size": 5}),
    ("sasa", {"kernel_size": 5, "num_heads": 2, "out_channels": 16}),
    ("san", {"mode": "patchwise", "kernel_size": 3}),
    ("dgmn", {"dilations": (2, 3, 5), "weight_groups": 8}),
    ("co_attention", {"mode": "symmetric"}),
    ("can_cross_attention", {"height": 5, "width": 7, "temperature": 0.5}),
    ("context_transformer", {"pool_sizes": (1, 3), "num_priors": 2}),
]


@pytest.mark.parametrize("key, config", EXPORT_CONFIGS, ids=[k for k, _ in EXPORT_CONFIGS])
def test_export_matches_eager_at_two_sizes(key, config, tmp_path, randomize_norms):
    import onnx
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    from attn_deploy.backends.reference_ops import REFERENCE_OPS

    model = randomize_norms(ad.create(key, **config))
    if key == "dgmn":   # messages are ~10% of y at init; weigh them up so parity sees them
        with torch.no_grad():
            model.gammas.uniform_(5, 10)
    path = ad.export_block(key, tmp_path / f"{key}.onnx", model=model)
    spec = ad.spec(key, **config)
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    if key in ("sasa", "san", "local_relation"):   # windows are Pad/Slice/Concat, no Gather
        assert not ops & {"Gather", "GatherElements", "GatherND"}, ops
    if key == "dgmn":   # attributes within TensorRT's GridSample support
        (node,) = [n for n in proto.graph.node if n.op_type == "GridSample"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {"mode": b"bilinear", "padding_mode": b"zeros", "align_corners": 0}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(proto, new_ops=REFERENCE_OPS)
    for seed, dims in enumerate(({}, spec.alternate_dims())):
        xs = ad.example_inputs(key, seed=seed + 3, config=config, **dims)
        with torch.no_grad():
            expected = model(*xs)
        expected = (expected,) if isinstance(expected, torch.Tensor) else expected
        feeds = {name: x.numpy() for name, x in zip(spec.inputs, xs)}
        for runner in (session, reference):
            got = runner.run(None, feeds)
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                assert g.shape == e.shape, (dims, g.shape)
                assert _rel(g, e.numpy()) <= spec.rtol, (type(runner).__name__, dims)
