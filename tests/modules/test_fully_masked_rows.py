"""Queries with nothing to attend to (every key padded; causal attention with left padding)
get zero attention weights, in eager PyTorch and in the exported model alike (no NaN)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attn_deploy as ad
from attn_deploy.backends import onnx_runner


def _left_padded(lengths, length):
    """bool [N, length], True = padded, the real tokens at the end of each row."""
    return torch.arange(length)[None, :] < (length - torch.tensor(lengths))[:, None]


def _mha_reference(m, x, padded, causal):
    """Masked attention via torch's scaled_dot_product_attention (rows with no allowed key are
    left out of the comparison: SDPA gives them NaN) and the block's own projections."""
    n, length, _ = x.shape
    q, k, v = (p(x).unflatten(-1, (m.num_heads, m.head_dim)).transpose(1, 2)
               for p in (m.q, m.k, m.v))
    allowed = ~padded[:, None, None, :]                                  # [N, 1, 1, L]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    heads = heads * m.gate()[:, None, None]
    out = m.proj(heads.transpose(1, 2).flatten(2))
    has_key = allowed.expand(n, 1, length, length).any(-1)[:, 0]         # [N, L]
    return out, has_key


@settings(derandomize=True, max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(2, 9), data=st.data(), causal=st.booleans(), left=st.booleans())
def test_mha_masked_rows_match_reference_and_empty_rows_are_the_bias(length, data, causal,
                                                                    left):
    lengths = data.draw(st.lists(st.integers(0, length), min_size=1, max_size=3))
    padded = (_left_padded(lengths, length) if left
              else torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None])
    torch.manual_seed(length)
    m = ad.create("mha", dim=8, num_heads=2, causal=causal)
    x = torch.randn(len(lengths), length, 8)
    with torch.no_grad():
        y = m(x, padded)
        want, has_key = _mha_reference(m, x, padded, causal)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[has_key], want[has_key], rtol=1e-5, atol=1e-6)
    assert torch.equal(y[~has_key], m.proj.bias.expand(int((~has_key).sum()), 8))


@pytest.fixture(scope="module")
def causal_mha_onnx(tmp_path_factory):
    torch.manual_seed(0)
    m = ad.create("mha", causal=True, dim=16, num_heads=2)
    path = ad.export_block("mha", tmp_path_factory.mktemp("mha") / "mha_causal.onnx", model=m)
    return m, path


@pytest.mark.parametrize("length", [6, 11])
def test_causal_mha_left_padding_eager_equals_onnx_runtime(causal_mha_onnx, length):
    m, path = causal_mha_onnx
    g = torch.Generator().manual_seed(length)
    x = torch.randn(4, length, 16, generator=g)
    # row 0 unpadded, rows 1-2 left padded (their first queries see only padding), row 3 empty
    padded = _left_padded([length, length - 3, 1, 0], length)
    with torch.no_grad():
        eager = m(x, padded).numpy()
    with onnx_runner("ort-cpu", path) as runner:
        ort = runner.infer({"x": x.numpy(), "key_padding_mask": padded.numpy()})["y"]
    assert np.isfinite(eager).all() and np.isfinite(ort).all()
    np.testing.assert_allclose(ort, eager, rtol=1e-4, atol=1e-5)
    bias = m.proj.bias.detach().numpy()
    np.testing.assert_array_equal(eager[1, :3], np.broadcast_to(bias, (3, 16)))
    np.testing.assert_array_equal(eager[3], np.broadcast_to(bias, (length, 16)))
    assert not np.allclose(eager[1, 3:], bias)       # rows with a real key are not the bias


def test_luong_fully_padded_source_eager_equals_onnx_runtime(tmp_path):
    torch.manual_seed(0)
    m = ad.create("luong")
    path = ad.export_block("luong", tmp_path / "luong.onnx", model=m)
    g = torch.Generator().manual_seed(1)
    h_t, H = torch.randn(3, 32, generator=g), torch.randn(3, 7, 32, generator=g)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[1, 4:] = True
    mask[2] = True                                   # nothing to attend to
    with torch.no_grad():
        h_tilde, align = m(h_t, H, mask)
        want_row2 = torch.tanh(m.w_c(torch.cat([torch.zeros(32), h_t[2]])))
    with onnx_runner("ort-cpu", path) as runner:
        out = runner.infer({"h_t": h_t.numpy(), "H": H.numpy(), "source_mask": mask.numpy()})
    assert torch.equal(align[2], torch.zeros(7)) and torch.isfinite(h_tilde).all()
    torch.testing.assert_close(h_tilde[2], want_row2)
    np.testing.assert_allclose(out["align"], align.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["h_tilde"], h_tilde.numpy(), rtol=1e-5, atol=1e-6)
