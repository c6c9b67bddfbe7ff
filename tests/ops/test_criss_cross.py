"""attn_deploy.ops.criss_cross_attention: reference vs a naive per-pixel oracle, the custom op
(native kernels when built) vs the reference, dtypes, edge shapes, argument errors, autograd,
torch.export/compile."""
from __future__ import annotations

import pytest
import torch

from attn_deploy.errors import AttnDeployError
from attn_deploy.ops import criss_cross_attention, criss_cross_attention_reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def naive_criss_cross(query, key, value):
    """DESIGN.md: per pixel, one softmax over its column and its row (itself once), float64."""
    q, k, v = query.double(), key.double(), value.double()
    n, _, h, w = q.shape
    out = torch.zeros(n, v.shape[1], h, w, dtype=torch.float64)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                positions = [(yy, x) for yy in range(h)] + [(y, xx) for xx in range(w) if xx != x]
                energy = torch.stack([q[b, :, y, x] @ k[b, :, py, px] for py, px in positions])
                weights = torch.softmax(energy, 0)
                out[b, :, y, x] = sum(a * v[b, :, py, px]
                                      for a, (py, px) in zip(weights, positions))
    return out


def make_inputs(n, cq, c, h, w, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(n, cq, h, w, generator=gen), torch.randn(n, cq, h, w, generator=gen)
    v = torch.randn(n, c, h, w, generator=gen)
    return q.to(dtype), k.to(dtype), v.to(dtype)


CASES = [(2, 3, 5, 4, 5), (1, 8, 16, 6, 3), (1, 2, 3, 1, 4), (2, 4, 2, 5, 1), (1, 1, 1, 1, 1),
         (1, 4, 8, 7, 7)]  # n, cq, c, h, w


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_naive_loops(case):
    q, k, v = make_inputs(*case, dtype=torch.float64)
    torch.testing.assert_close(criss_cross_attention_reference(q, k, v),
                               naive_criss_cross(q, k, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_op_matches_naive_loops_fp32(case, device):
    q, k, v = make_inputs(*case, seed=1)
    out = criss_cross_attention(q.to(device), k.to(device), v.to(device))
    assert out.dtype == torch.float32 and out.shape == v.shape
    torch.testing.assert_close(out.cpu().double(), naive_criss_cross(q, k, v),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", [criss_cross_attention, criss_cross_attention_reference])
def test_float16_accumulates_in_float32(fn, device):
    q, k, v = make_inputs(2, 8, 16, 6, 9, dtype=torch.float16, seed=2)
    out = fn(q.to(device), k.to(device), v.to(device))
    assert out.dtype == torch.float16
    expected = naive_criss_cross(q, k, v)  # same fp16 inputs, exact arithmetic
    rel = (out.cpu().double() - expected).norm() / expected.norm()
    assert rel < 1e-3, rel  # fp16 output rounding only, not fp16 accumulation
    torch.testing.assert_close(out.cpu().double(), expected, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_and_non_contiguous(device):
    q, k, v = make_inputs(0, 2, 3, 4, 5)
    assert criss_cross_attention(q.to(device), k.to(device), v.to(device)).shape == (0, 3, 4, 5)
    q = torch.randn(2, 4, 5, 3).permute(0, 3, 1, 2)        # [2, 3, 4, 5], channels-last
    k = torch.randn(2, 3, 4, 10)[..., ::2]                  # strided
    v = torch.randn(2, 6, 5, 4).transpose(2, 3)             # [2, 6, 4, 5]
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous())
    expected = naive_criss_cross(q, k, v)
    for fn in (criss_cross_attention, criss_cross_attention_reference):
        out = fn(q.to(device), k.to(device), v.to(device))
        torch.testing.assert_close(out.cpu().double(), expected, rtol=1e-5, atol=1e-5)


BAD_ARGS = [  # query, key, value shapes, message
    ((1, 2, 3, 4), (1, 3, 3, 4), (1, 5, 3, 4), "key must have the shape of query [1, 2, 3, 4]"),
    ((1, 2, 3, 4), (1, 2, 4, 3), (1, 5, 3, 4), "got [1, 2, 4, 3]"),
    ((1, 2, 3, 4), (1, 2, 3, 4), (1, 5, 3, 5), "value must be [N, C, H, W] with N, H, W of query"),
    ((1, 2, 3, 4), (1, 2, 3, 4), (2, 5, 3, 4), "(1, 3, 4), got [2, 5, 3, 4]"),
    ((2, 3, 4), (2, 3, 4), (2, 3, 4), "query must be 4-D [N, C, H, W], got shape [2, 3, 4]"),
    ((1, 2, 3, 4), (1, 2, 3, 4), (5, 3, 4), "value must be 4-D"),
]


@pytest.mark.parametrize("fn", [criss_cross_attention, criss_cross_attention_reference,
                                torch.ops.attn_deploy.criss_cross_attention])
@pytest.mark.parametrize("bad", BAD_ARGS, ids=[b[-1][:30] for b in BAD_ARGS])
def test_bad_arguments_raise_clear_errors(fn, bad):
    *shapes, message = bad
    with pytest.raises(AttnDeployError) as err:
        fn(*(torch.randn(s) for s in shapes))
    assert message in str(err.value)


def test_dtype_errors():
    q, k, v = make_inputs(1, 2, 3, 3, 3)
    with pytest.raises(AttnDeployError, match="value must have the dtype and device of query"):
        criss_cross_attention(q, k, v.half())
    with pytest.raises(AttnDeployError, match="query must be a floating-point tensor"):
        criss_cross_attention(q.int(), k.int(), v.int())


@pytest.mark.parametrize("case,fast", [((1, 2, 2, 2, 3), False), ((1, 2, 3, 1, 3), False),
                                       ((2, 3, 4, 3, 4), True)])
def test_gradcheck(case, fast):
    inputs = [t.requires_grad_() for t in make_inputs(*case, dtype=torch.float64, seed=3)]
    assert torch.autograd.gradcheck(criss_cross_attention, inputs, fast_mode=fast)


@pytest.mark.parametrize("device", DEVICES)
def test_fp32_backward_matches_reference_autograd(device):
    """The op's backward (native kernels when built) against autograd of the reference."""
    inputs = make_inputs(2, 4, 6, 5, 7, seed=4)
    grad = torch.randn(2, 6, 5, 7)
    f32 = [t.to(device).clone().requires_grad_() for t in inputs]
    criss_cross_attention(*f32).backward(grad.to(device))
    f64 = [t.double().requires_grad_() for t in inputs]
    criss_cross_attention_reference(*f64).backward(grad.double())
    for got, want in zip(f32, f64):
        torch.testing.assert_close(got.grad.cpu().double(), want.grad, rtol=1e-5, atol=1e-5)


class _Attend(torch.nn.Module):
    def forward(self, q, k, v):
        return criss_cross_attention(q, k, v) + v


def test_torch_export_keeps_the_custom_op():
    n, h, w = (torch.export.Dim(d) for d in "NHW")
    dyn = {0: n, 2: h, 3: w}
    ep = torch.export.export(_Attend(), make_inputs(2, 2, 4, 5, 6), dynamic_shapes=(dyn,) * 3)
    targets = [node.target for node in ep.graph.nodes if node.op == "call_function"]
    assert torch.ops.attn_deploy.criss_cross_attention.default in targets
    q, k, v = make_inputs(3, 2, 4, 7, 4, seed=5)
    torch.testing.assert_close(ep.module()(q, k, v), criss_cross_attention_reference(q, k, v) + v)


def test_torch_compile_traces_forward_and_backward():
    inputs = make_inputs(2, 2, 3, 4, 5)
    compiled = torch.compile(lambda q, k, v: criss_cross_attention(q, k, v).square().sum(),
                             backend="aot_eager", fullgraph=True)
    a = [t.clone().requires_grad_() for t in inputs]
    compiled(*a).backward()
    b = [t.clone().requires_grad_() for t in inputs]
    criss_cross_attention_reference(*b).square().sum().backward()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-5, atol=1e-5)
