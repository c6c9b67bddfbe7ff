"""Sequence attention blocks: mha (masks, head gates, pruning), synthesizer, luong,
show_attend_tell. Each block is checked against an independent re-computation on random inputs
at two shapes, for bad arguments, and exported once: ONNX Runtime and onnx.reference must match
eager (relative L2 <= spec.rtol) at the default and the alternate dims from the same file."""
from __future__ import annotations

import math

import onnx
import pytest
import torch
import torch.nn.functional as F

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError




def initializer_bytes(proto: onnx.ModelProto) -> int:
    return sum(onnx.numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)


# ---------------------------------------------------------------------------------------- mha
def set_gates(m, log_alpha):
    with torch.no_grad():
        m.gate.log_alpha.copy_(torch.tensor(log_alpha, dtype=torch.float32))


def mha_reference(m, x, mask, causal):
    """Per-head F.scaled_dot_product_attention with the gates applied by hand."""
    n, length, _ = x.shape
    heads = []
    allowed = torch.ones(n, 1, length, length, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & ~mask[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    gates = m.gate() if m.gate is not None else torch.ones(m.num_heads)
    dh = m.head_dim
    for h in range(m.num_heads):
        sl = slice(h * dh, (h + 1) * dh)
        q, k, v = (F.linear(x, p.weight[sl], p.bias[sl])[:, None] for p in (m.q, m.k, m.v))
        heads.append(gates[h] * F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)[:, 0])
    return m.proj(torch.cat(heads, -1))


@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_nn_multihead_attention(causal):
    m = ad.create("mha", dim=32, num_heads=4, causal=causal)   # gates open: plain MHA
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([m.q.weight, m.k.weight, m.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([m.q.bias, m.k.bias, m.v.bias]))
        ref.out_proj.load_state_dict(m.proj.state_dict())
    for seed, (n, length) in enumerate([(2, 10), (3, 7)]):
        x, mask = ad.example_inputs("mha", seed=seed, N=n, L=length)
        future = torch.ones(length, length, dtype=torch.bool).triu(1) if causal else None
        with torch.no_grad():
            want, _ = ref(x, x, x, key_padding_mask=mask, attn_mask=future, need_weights=False)
            torch.testing.assert_close(m(x, mask), want, rtol=1e-5, atol=1e-5)


def test_mha_partial_gates_match_per_head_reference():
    m = ad.create("mha", dim=32, num_heads=4, causal=True)
    set_gates(m, [3.0, 0.2, -1.0, 0.8])
    assert 0 < m.gate()[1] < 1 and 0 < m.gate()[3] < 1
    for seed, (n, length) in enumerate([(2, 10), (4, 5)]):
        x, mask = ad.example_inputs("mha", seed=seed, N=n, L=length)
        with torch.no_grad():
            torch.testing.assert_close(m(x, mask), mha_reference(m, x, mask, True),
                                       rtol=1e-5, atol=1e-6)


def test_mha_example_masks_are_valid_and_differ_per_row():
    x, mask = ad.example_inputs("mha", seed=3, N=4, L=9)
    assert mask.dtype == torch.bool and mask.shape == (4, 9)
    assert (~mask).any(1).all()                       # no row fully padded (softmax stays finite)
    assert len({tuple(r.tolist()) for r in mask}) > 1
    assert not mask[0].any() and mask[1].any()


def test_hard_concrete_gate_statistics_and_l0_penalty():
    m = ad.create("mha", dim=16, num_heads=4)
    set_gates(m, [-2.0, 0.0, 1.0, 4.0])
    m.train()
    samples = torch.stack([m.gate() for _ in range(6000)])
    assert samples.min() >= 0 and samples.max() <= 1
    assert (samples == 0).any() and (samples == 1).any()          # exact zeros and ones occur
    beta, low, high = 2 / 3, -0.1, 1.1
    p_open = torch.sigmoid(m.gate.log_alpha - beta * math.log(-low / high)).detach()
    torch.testing.assert_close((samples > 0).float().mean(0), p_open, atol=0.025, rtol=0)
    penalty = m.l0_penalty()
    torch.testing.assert_close(penalty, p_open.sum())
    penalty.backward()
    assert m.gate.log_alpha.grad is not None and (m.gate.log_alpha.grad > 0).all()
    m.eval()
    g1, g2 = m.gate(), m.gate()
    assert torch.equal(g1, g2)
    want = (torch.sigmoid(m.gate.log_alpha) * (high - low) + low).clamp(0, 1)
    torch.testing.assert_close(g1, want)
    assert ad.create("mha", head_gates=False).l0_penalty().item() == 0.0


def test_mha_prune_heads_keeps_outputs_and_shrinks_export(tmp_path, export_parity):
    m = ad.create("mha", dim=32, num_heads=4, causal=True)
    set_gates(m, [0.5, -8.0, 2.0, -8.0])                           # heads 1 and 3 closed at eval
    gated = export_parity("mha", m, tmp_path / "gated.onnx")
    xs = [ad.example_inputs("mha", seed=s, N=n, L=l) for s, (n, l) in enumerate([(2, 10), (3, 6)])]
    with torch.no_grad():
        before = [m(*x) for x in xs]
    assert m.prune_heads() == [1, 3]
    assert m.num_heads == 2 and m.q.out_features == 16 and m.proj.in_features == 16
    with torch.no_grad():
        for x, want in zip(xs, before):
            torch.testing.assert_close(m(*x), want, rtol=1e-6, atol=1e-6)
    pruned = export_parity("mha", m, tmp_path / "pruned.onnx")
    assert initializer_bytes(pruned) < 0.7 * initializer_bytes(gated)
    assert m.prune_heads() == []                                   # nothing closed any more
    assert m.prune_heads([1]) == [2]                               # original head ids
    with pytest.raises(AttnDeployError, match="all 1 heads"):
        m.prune_heads([0])
    with pytest.raises(AttnDeployError, match="indices"):
        m.prune_heads([5])


def test_mha_bad_arguments():
    m = ad.create("mha", dim=32, num_heads=4)
    x = torch.randn(2, 6, 32)
    with pytest.raises(AttnDeployError, match=r"x: expected a \[N, L, 32\]"):
        m(torch.randn(2, 6, 16))
    with pytest.raises(AttnDeployError, match="key_padding_mask: expected a bool"):
        m(x, torch.zeros(2, 6))
    with pytest.raises(AttnDeployError, match="key_padding_mask: expected shape"):
        m(x, torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(AttnDeployError, match="num_heads"):
        ad.create("mha", dim=30, num_heads=4)
    assert list(ad.spec("mha", with_key_padding_mask=False).inputs) == ["x"]
    assert ad.spec("mha").dtype("key_padding_mask") == torch.bool


# -------------------------------------------------------------------------------- synthesizer
def synthesizer_reference(m, x):
    """The paper's formulas written out per head with einsum and explicit repeats."""
    n, length, _ = x.shape
    hn, dh, a_b = m.num_heads, m.head_dim, getattr(m, "factors", None)
    per_head = lambda t: t.reshape(n, length, hn, -1).permute(0, 2, 1, 3)   # noqa: E731
    logits = []
    for part in m.parts:
        if part == "dense":
            w1, w2 = m.dense[0], m.dense[2]
            b = per_head(F.linear(torch.relu(F.linear(x, w1.weight, w1.bias)), w2.weight, w2.bias))
            logits.append(b[..., :length])
        elif part == "factorized_dense":
            a, bb = a_b
            hid = torch.relu(m.fd_hidden[0](x))
            fa, fb = per_head(m.fd_a(hid)), per_head(m.fd_b(hid))
            c = fa.repeat(1, 1, 1, bb) * fb.repeat_interleave(a, dim=-1)    # H_A(A) * H_B(B)
            logits.append(c[..., :length])
        elif part == "random":
            logits.append(m.random[:, :length, :length].expand(n, -1, -1, -1))
        elif part == "factorized_random":
            r = torch.einsum("hik,hjk->hij", m.r1, m.r2)
            logits.append(r[:, :length, :length].expand(n, -1, -1, -1))
        else:
            q, k = per_head(m.q(x)), per_head(m.k(x))
            logits.append(torch.einsum("nhid,nhjd->nhij", q, k) / math.sqrt(dh))
    alphas = m.mix.softmax(0) if len(logits) > 1 else torch.ones(1)
    att = sum(al * t for al, t in zip(alphas, logits)).softmax(-1)
    y = torch.einsum("nhij,nhjd->nhid", att, per_head(m.v(x)))
    return m.proj(y.permute(0, 2, 1, 3).reshape(n, length, hn * dh))


MODES = ["dense", "random", "factorized_dense", "factorized_random", "dot", "dense+dot",
         "random+dot", "dense+random+factorized_dense+factorized_random+dot"]


@pytest.mark.parametrize("mode", MODES)
def test_synthesizer_matches_reference(mode):
    m = ad.create("synthesizer", dim=32, num_heads=2, max_len=16, mode=mode)
    if len(m.parts) > 1:
        with torch.no_grad():
            m.mix.copy_(torch.linspace(-1.0, 1.0, len(m.parts)))
    for seed, (n, length) in enumerate([(2, 8), (3, 16), (1, 5)]):
        x = torch.randn(n, length, 32, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            torch.testing.assert_close(m(x), synthesizer_reference(m, x), rtol=1e-5, atol=1e-6)


def test_synthesizer_max_len_and_random_modes():
    m = ad.create("synthesizer", max_len=16, mode="random+dot")
    with pytest.raises(AttnDeployError, match="x: sequence length 17 exceeds max_len=16"):
        m(torch.randn(2, 17, 32))
    assert ad.spec("synthesizer", max_len=16).max_dims == {"L": 16}
    assert ad.spec("synthesizer", mode="dot").max_dims == {}
    assert ad.create("synthesizer", mode="dot")(torch.randn(1, 40, 32)).shape == (1, 40, 32)
    fixed = ad.create("synthesizer", mode="random+factorized_random", random_trainable=False)
    names = {n for n, _ in fixed.named_parameters()}
    assert {"random", "r1", "r2"}.isdisjoint(names)
    assert {"random", "r1", "r2"} <= {n for n, _ in fixed.named_buffers()}
    trained = ad.create("synthesizer", mode="random+factorized_random")
    assert {"random", "r1", "r2"} <= {n for n, _ in trained.named_parameters()}


def test_synthesizer_bad_arguments():
    with pytest.raises(AttnDeployError, match="mode"):
        ad.create("synthesizer", mode="dense+conv")
    with pytest.raises(AttnDeployError, match="mode"):
        ad.create("synthesizer", mode="dense+dense")
    with pytest.raises(AttnDeployError, match="dense_factors"):
        ad.create("synthesizer", mode="factorized_dense", max_len=16, dense_factors=(3, 5))
    with pytest.raises(AttnDeployError, match="x: expected"):
        ad.create("synthesizer")(torch.randn(2, 8))


def test_synthesizer_export_parity(tmp_path, export_parity):
    m = ad.create("synthesizer", mode="dense+random+factorized_dense+factorized_random+dot")
    with torch.no_grad():
        m.mix.copy_(torch.tensor([0.3, -0.5, 0.1, 0.7, -0.2]))
    export_parity("synthesizer", m, tmp_path / "synthesizer.onnx")


# -------------------------------------------------------------------------------------- luong
def luong_reference(m, h_t, H, mask, position):
    """Row by row, position by position, as the paper's equations read."""
    n, s, d = H.shape
    h_out, a_out = torch.zeros(n, d), torch.zeros(n, s)
    for b in range(n):
        valid = [j for j in range(s) if mask is None or not mask[b, j]]
        src_len = len(valid)
        if m.attention == "local-m":
            p = float(min(max(int(position[b]), 0), src_len - 1))
        elif m.attention == "local-p":
            p = (src_len - 1) * torch.sigmoid(m.v_p.weight @ torch.tanh(m.w_p.weight @ h_t[b]))
            p = float(p)
        if m.attention != "global":
            valid = [j for j in valid if abs(j - p) <= m.window]
        scores = {}
        for j in valid:
            if m.score == "dot":
                scores[j] = h_t[b] @ H[b, j]
            elif m.score == "general":
                scores[j] = h_t[b] @ (m.w_a.weight @ H[b, j])
            else:
                w_a = torch.cat([m.w_t.weight, m.w_s.weight], 1)         # W_a [h_t; h_s]
                scores[j] = m.v_a.weight[0] @ torch.tanh(w_a @ torch.cat([h_t[b], H[b, j]]))
        e = torch.stack(list(scores.values())).softmax(0)
        for j, w in zip(scores, e):
            gauss = math.exp(-(j - p) ** 2 / (2 * (m.window / 2) ** 2)) \
                if m.attention == "local-p" else 1.0
            a_out[b, j] = w * gauss
        context = a_out[b] @ H[b]
        h_out[b] = torch.tanh(m.w_c.weight @ torch.cat([context, h_t[b]]))
    return h_out, a_out


@pytest.mark.parametrize("attention", ["global", "local-m", "local-p"])
@pytest.mark.parametrize("score", ["dot", "general", "concat"])
def test_luong_matches_reference(score, attention):
    m = ad.create("luong", score=score, attention=attention, window=2)
    for seed, (n, s) in enumerate([(2, 10), (4, 13)]):
        inputs = ad.example_inputs("luong", seed=seed, config=m.attn_deploy_config["kwargs"],
                                   N=n, S=s)
        h_t, H, mask = inputs[:3]
        position = inputs[3] if attention == "local-m" else None
        with torch.no_grad():
            got = m(*inputs)
            want = luong_reference(m, h_t, H, mask, position)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
        assert (got[1][mask] == 0).all()
        if attention != "global":
            assert (got[1] == 0).sum() > mask.sum()                        # the window cut
        if attention == "local-p":
            assert (got[1].sum(-1) < 1).all()                              # Gaussian, no renorm


def test_luong_without_mask_and_bad_arguments():
    m = ad.create("luong", attention="local-p", with_source_mask=False)
    h_t, H = ad.example_inputs("luong", config={"attention": "local-p",
                                                "with_source_mask": False})
    with torch.no_grad():
        for g, w in zip(m(h_t, H), luong_reference(m, h_t, H, None, None)):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    with pytest.raises(AttnDeployError, match="with_source_mask"):
        ad.create("luong", attention="local-m", with_source_mask=False)
    with pytest.raises(AttnDeployError, match="score"):
        ad.create("luong", score="additive")
    with pytest.raises(AttnDeployError, match="attention"):
        ad.create("luong", attention="local")
    lm = ad.create("luong", attention="local-m")
    mask = torch.zeros(2, 10, dtype=torch.bool)
    with pytest.raises(AttnDeployError, match="position"):
        lm(h_t, H, mask)
    with pytest.raises(AttnDeployError, match="position"):
        lm(h_t, H, mask, torch.zeros(2))
    with pytest.raises(AttnDeployError, match="source_mask: expected a bool"):
        lm(h_t, H, mask.float(), torch.zeros(2, dtype=torch.long))
    with pytest.raises(AttnDeployError, match="h_t"):
        lm(h_t[:, :8], H, mask, torch.zeros(2, dtype=torch.long))
    spec = ad.spec("luong", attention="local-m")
    assert list(spec.inputs) == ["h_t", "H", "source_mask", "position"]
    assert spec.dtype("position") == torch.int64 and spec.dtype("source_mask") == torch.bool


@pytest.mark.parametrize("attention,score", [("local-m", "concat"), ("local-p", "general")])
def test_luong_export_parity(tmp_path, attention, score, export_parity):
    m = ad.create("luong", attention=attention, score=score)
    proto = export_parity("luong", m, tmp_path / "luong.onnx")
    kinds = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert kinds["source_mask"] == onnx.TensorProto.BOOL
    if attention == "local-m":
        assert kinds["position"] == onnx.TensorProto.INT64


# --------------------------------------------------------------------------- show_attend_tell
def sat_reference(m, a, h):
    e = torch.stack([torch.stack([m.w.weight[0] @ torch.tanh(m.w_a(a[b, i]) + m.w_h.weight @ h[b])
                                  for i in range(a.shape[1])]) for b in range(a.shape[0])])
    alpha = e.softmax(-1)
    beta = torch.sigmoid(m.f_beta(h)) if m.f_beta is not None else torch.ones(len(h), 1)
    return alpha, beta


@pytest.mark.parametrize("selector", [True, False])
def test_show_attend_tell_soft_and_hard_eval(selector):
    soft = ad.create("show_attend_tell", mode="soft", selector=selector)
    hard = ad.create("show_attend_tell", mode="hard", selector=selector)
    hard.load_state_dict(soft.state_dict())
    for seed, (n, length) in enumerate([(2, 12), (5, 7)]):
        a, h = ad.example_inputs("show_attend_tell", seed=seed, N=n, L=length)
        with torch.no_grad():
            alpha, beta = sat_reference(soft, a, h)
            z, got_alpha = soft(a, h)
            torch.testing.assert_close(got_alpha, alpha, rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(z, beta * (alpha[:, :, None] * a).sum(1), rtol=1e-5,
                                       atol=1e-6)
            z_hard, _ = hard(a, h)
            best = alpha.argmax(-1)
            torch.testing.assert_close(z_hard, beta * a[torch.arange(n), best])


def test_show_attend_tell_hard_samples_in_training():
    m = ad.create("show_attend_tell", mode="hard", selector=False, dim=8, hidden_dim=8)
    a = torch.randn(1, 5, 8).expand(6000, -1, -1).contiguous()
    h = torch.randn(1, 8).expand(6000, -1).contiguous()
    m.train()
    torch.manual_seed(0)
    with torch.no_grad():
        z, alpha = m(a, h)
    picked = (z[:, None, :] == a[:1]).all(-1)                              # [6000, 5]
    assert (picked.sum(1) == 1).all()                                      # z is one a_i
    torch.testing.assert_close(picked.float().mean(0), alpha[0], atol=0.025, rtol=0)


def test_show_attend_tell_bad_arguments():
    m = ad.create("show_attend_tell")
    with pytest.raises(AttnDeployError, match="mode"):
        ad.create("show_attend_tell", mode="stochastic")
    with pytest.raises(AttnDeployError, match=r"a: expected a \[N, L, 64\]"):
        m(torch.randn(2, 12, 32), torch.randn(2, 32))
    with pytest.raises(AttnDeployError, match=r"h: expected \[2, 32\]"):
        m(torch.randn(2, 12, 64), torch.randn(3, 32))


def test_show_attend_tell_hard_export_parity(tmp_path, export_parity):
    """Hard attention exports its eval form (argmax); soft is the registered default, which
    tests/modules/test_blocks.py exports."""
    proto = export_parity("show_attend_tell", ad.create("show_attend_tell", mode="hard"),
                                 tmp_path / "sat.onnx")
    assert "ArgMax" in {n.op_type for n in proto.graph.node}
