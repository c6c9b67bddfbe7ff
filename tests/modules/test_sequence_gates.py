"""Two-input and gated sequence blocks: ban, actor_transformer, lstm, gru. Independent
re-computations at two shapes, bad arguments, and one export per block checked with ONNX Runtime
and onnx.reference at the default and alternate dims from the same file."""
from __future__ import annotations

import pytest
import torch

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError




# ---------------------------------------------------------------------------------------- ban
def ban_reference(m, V, Q):
    """The paper's equations with einsum: joint softmax over Nv x Nq, rank-k sum pooling."""
    v, q = torch.relu(m.att_v[0](V)), torch.relu(m.att_q[0](Q))
    logits = torch.einsum("bik,gk,bjk->bgij", v, m.att_p, q) + m.att_b[None, :, None, None]
    n, g, nv, nq = logits.shape
    maps = logits.reshape(n, g, nv * nq).softmax(-1).reshape(n, g, nv, nq)
    for i in range(g):
        pv, pq = torch.relu(m.pool_v[i][0](V)), torch.relu(m.pool_q[i][0](Q))
        f = torch.einsum("bik,bij,bjk->bk", pv, maps[:, i], pq)
        f = torch.stack([f[:, j * m.pool_k:(j + 1) * m.pool_k].sum(-1) for j in range(m.hidden)],
                        -1)
        Q = Q + m.q_proj[i](f)[:, None, :]
    return Q.sum(1), maps


@pytest.mark.parametrize("glimpses,pool_k", [(2, 3), (1, 1), (4, 2)])
def test_ban_matches_reference(glimpses, pool_k):
    m = ad.create("ban", v_dim=24, q_dim=16, hidden=20, glimpses=glimpses, pool_k=pool_k)
    cfg = m.attn_deploy_config["kwargs"]
    for seed, dims in enumerate([{}, {"N": 3, "Nv": 5, "Nq": 11}]):
        V, Q = ad.example_inputs("ban", seed=seed, config=cfg, **dims)
        with torch.no_grad():
            got, want = m(V, Q), ban_reference(m, V, Q)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[1].sum((2, 3)), torch.ones(len(V), glimpses))


def test_ban_bad_arguments():
    m = ad.create("ban")
    with pytest.raises(AttnDeployError, match=r"V: expected a \[N, L, 32\]"):
        m(torch.randn(2, 10, 16), torch.randn(2, 8, 32))
    with pytest.raises(AttnDeployError, match="Q: expected batch 2"):
        m(torch.randn(2, 10, 32), torch.randn(3, 8, 32))
    with pytest.raises(AttnDeployError, match="glimpses"):
        ad.create("ban", glimpses=0)


def test_ban_export_parity(tmp_path, export_parity):
    export_parity("ban", ad.create("ban"), tmp_path / "ban.onnx")


# -------------------------------------------------------------------------- actor_transformer
def copy_into_torch_layer(layer) -> torch.nn.TransformerEncoderLayer:
    attn = layer.attn
    ref = torch.nn.TransformerEncoderLayer(attn.dim, attn.num_heads, layer.ffn[0].out_features,
                                           dropout=0.0, batch_first=True)
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([attn.q.weight, attn.k.weight,
                                                      attn.v.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        ref.self_attn.out_proj.load_state_dict(attn.proj.state_dict())
        ref.linear1.load_state_dict(layer.ffn[0].state_dict())
        ref.linear2.load_state_dict(layer.ffn[3].state_dict())
        ref.norm1.load_state_dict(layer.norm1.state_dict())
        ref.norm2.load_state_dict(layer.norm2.state_dict())
    return ref.eval()


@pytest.mark.parametrize("cfg", [
    {},
    {"in_dims": (16, 24, 8), "modalities": ("rgb", "flow", "pose"), "fusion": "concat",
     "num_layers": 2, "num_heads": 3, "embed_dim": 12},
    {"in_dims": (16, 8), "modalities": ("flow", "pose"), "fusion": "sum"},
])
def test_actor_transformer_matches_torch_encoder(cfg):
    m = ad.create("actor_transformer", **cfg)
    refs = [copy_into_torch_layer(layer) for layer in m.layers]
    for seed, dims in enumerate([{}, {"N": 3, "K": 5}]):
        (A,) = ad.example_inputs("actor_transformer", seed=seed, config=cfg, **dims)
        parts = A.split(m.in_dims, -1)
        embedded = [e(p) for e, p in zip(m.embed, parts)]
        x = torch.cat(embedded, -1) if m.fusion == "concat" else torch.stack(embedded).sum(0)
        with torch.no_grad():
            for ref in refs:
                x = ref(x)
            torch.testing.assert_close(m(A), x, rtol=1e-5, atol=1e-5)


def test_actor_transformer_bad_arguments():
    with pytest.raises(AttnDeployError, match="in_dims"):
        ad.create("actor_transformer", in_dims=(16, 8), modalities=("rgb",))
    with pytest.raises(AttnDeployError, match="fusion"):
        ad.create("actor_transformer", fusion="late")
    with pytest.raises(AttnDeployError, match="num_heads"):
        ad.create("actor_transformer", embed_dim=30, num_heads=4)
    m = ad.create("actor_transformer", in_dims=(16, 8), modalities=("rgb", "pose"))
    assert ad.spec("actor_transformer", in_dims=(16, 8), modalities=("rgb", "pose")).inputs == \
        {"A": ("N", "K", 24)}
    with pytest.raises(AttnDeployError, match=r"A: expected a \[N, L, 24\]"):
        m(torch.randn(2, 5, 16))


def test_actor_transformer_export_parity(tmp_path, export_parity):
    export_parity("actor_transformer", ad.create("actor_transformer"),
                         tmp_path / "actor.onnx")


# -------------------------------------------------------------------------------- lstm, gru
def manual_rnn(kind: str, rnn: torch.nn.RNNBase, x: torch.Tensor, states):
    """The gate equations step by step (batch first), layer by layer, both directions."""
    n, length, _ = x.shape
    dirs, hidden = 2 if rnn.bidirectional else 1, rnn.hidden_size
    h0 = states[0] if states else torch.zeros(rnn.num_layers * dirs, n, hidden)
    c0 = states[1] if kind == "lstm" and states else torch.zeros_like(h0)
    seq, h_out, c_out = x, [], []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
            b_ih, b_hh = getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)
            h, c = h0[layer * dirs + d], c0[layer * dirs + d]
            ys = [None] * length
            for t in (reversed(range(length)) if d else range(length)):
                gx, gh = seq[:, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
                if kind == "lstm":
                    i, f, g, o = (gx + gh).chunk(4, -1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                else:
                    (xr, xz, xn), (hr, hz, hn) = gx.chunk(3, -1), gh.chunk(3, -1)
                    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                    h = (1 - z) * torch.tanh(xn + r * hn) + z * h
                ys[t] = h
            outs.append(torch.stack(ys, 1))
            h_out.append(h)
            c_out.append(c)
        seq = torch.cat(outs, -1)
    result = (seq, torch.stack(h_out))
    return result + (torch.stack(c_out),) if kind == "lstm" else result


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("cfg", [{}, {"num_layers": 2, "bidirectional": True,
                                      "with_initial_state": True, "hidden_size": 20}])
def test_recurrent_matches_manual_cell_loop(kind, cfg):
    m = ad.create(kind, **cfg)
    for seed, dims in enumerate([{}, {"N": 3, "L": 5}]):
        xs = ad.example_inputs(kind, seed=seed, config=cfg, **dims)
        with torch.no_grad():
            got, want = m(*xs), manual_rnn(kind, m.rnn, xs[0], xs[1:])
        assert len(got) == len(ad.spec(kind, **cfg).outputs)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_export_is_one_node_per_layer(tmp_path, kind, export_parity):
    cfg = {"num_layers": 2, "bidirectional": True, "with_initial_state": True}
    proto = export_parity(kind, ad.create(kind, **cfg), tmp_path / f"{kind}.onnx")
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count(kind.upper()) == 2
    assert not {"Loop", "Scan", "If"} & set(ops)
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in proto.graph.output}
    assert dims["y"] == ["N", "L", 64] and dims["h_n"] == [4, "N", 32]


def test_recurrent_spec_and_bad_arguments():
    assert list(ad.spec("lstm").inputs) == ["x"]
    assert ad.spec("lstm", with_initial_state=True, num_layers=2).inputs == {
        "x": ("N", "L", 32), "h0": (2, "N", 32), "c0": (2, "N", 32)}
    assert list(ad.spec("gru", with_initial_state=True).inputs) == ["x", "h0"]
    lstm, gru = ad.create("lstm"), ad.create("gru")
    x = torch.randn(2, 6, 32)
    with pytest.raises(AttnDeployError, match=r"h0: expected \[num_layers \* directions"):
        gru(x, torch.zeros(1, 3, 32))
    with pytest.raises(AttnDeployError, match="give all or none"):
        lstm(x, torch.zeros(1, 2, 32))
    with pytest.raises(AttnDeployError, match=r"x: expected a \[N, L, 32\]"):
        lstm(torch.randn(2, 6, 8))
    with pytest.raises(AttnDeployError, match="hidden_size"):
        ad.create("gru", hidden_size=0)
