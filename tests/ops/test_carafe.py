"""attn_deploy.ops.carafe: reference vs a naive loop oracle, the custom op (native kernels when
built) vs the reference, dtypes, edge shapes, argument errors, autograd, torch.export/compile."""
from __future__ import annotations

import pytest
import torch

from attn_deploy.errors import AttnDeployError
from attn_deploy.ops import carafe, carafe_reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def naive_carafe(features, masks, k, g, s):
    """The DESIGN.md formula, one output pixel and tap at a time, in float64."""
    f, m = features.double(), masks.double()
    n, c, h, w = f.shape
    r = (k - 1) // 2
    group_of = torch.arange(c) // (c // g)
    out = torch.zeros(n, c, h * s, w * s, dtype=torch.float64)
    for y in range(h * s):
        for x in range(w * s):
            for i in range(k):
                for j in range(k):
                    sy, sx = y // s + i - r, x // s + j - r
                    if 0 <= sy < h and 0 <= sx < w:
                        tap = m[:, group_of * k * k + i * k + j, y, x]
                        out[:, :, y, x] += f[:, :, sy, sx] * tap
    return out


def make_inputs(n, c, h, w, k, g, s, dtype=torch.float32, seed=0, normalise=True):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, c, h, w, generator=gen)
    masks = torch.randn(n, g * k * k, h * s, w * s, generator=gen)
    if normalise:  # as CARAFE feeds it: a softmax per group over the k*k taps
        masks = masks.reshape(n, g, k * k, h * s, w * s).softmax(2).reshape(masks.shape)
    return features.to(dtype), masks.to(dtype)


CASES = [  # n, c, h, w, k, g, s
    (2, 4, 3, 5, 3, 1, 2), (1, 8, 4, 4, 5, 2, 2), (2, 8, 3, 2, 1, 4, 3), (1, 4, 2, 3, 3, 2, 1),
    (1, 6, 4, 3, 5, 3, 3), (3, 4, 1, 1, 5, 1, 2), (1, 2, 5, 1, 3, 1, 2), (2, 4, 4, 4, 7, 1, 1),
]


@pytest.mark.parametrize("case", CASES)
def test_reference_matches_naive_loops(case):
    *shape, k, g, s = case
    f, m = make_inputs(*shape, k, g, s, dtype=torch.float64, normalise=False)
    torch.testing.assert_close(carafe_reference(f, m, k, g, s), naive_carafe(f, m, k, g, s),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_op_matches_naive_loops_fp32(case, device):
    *shape, k, g, s = case
    f, m = make_inputs(*shape, k, g, s, seed=1)
    out = carafe(f.to(device), m.to(device), k, g, s)
    assert out.dtype == torch.float32 and out.shape == (shape[0], shape[1], shape[2] * s,
                                                          shape[3] * s)
    torch.testing.assert_close(out.cpu().double(), naive_carafe(f, m, k, g, s),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fn", [carafe, carafe_reference])
def test_float16_accumulates_in_float32(fn, device):
    f, m = make_inputs(2, 16, 6, 7, 5, 2, 2, dtype=torch.float16, seed=2)
    out = fn(f.to(device), m.to(device), 5, 2, 2)
    assert out.dtype == torch.float16
    expected = naive_carafe(f, m, 5, 2, 2)  # same fp16 inputs, exact arithmetic
    rel = (out.cpu().double() - expected).norm() / expected.norm()
    assert rel < 1e-3, rel  # fp16 output rounding only (~3e-4), not fp16 accumulation
    torch.testing.assert_close(out.cpu().double(), expected, rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_and_non_contiguous(device):
    f, m = make_inputs(0, 4, 3, 3, 3, 2, 2)
    out = carafe(f.to(device), m.to(device), 3, 2, 2)
    assert out.shape == (0, 4, 6, 6)
    # channels-last features and strided masks (every other column of a wider tensor)
    f = torch.randn(2, 5, 6, 8).permute(0, 3, 1, 2)                 # [2, 8, 5, 6]
    m = torch.rand(2, 9, 10, 24)[..., ::2]                          # [2, 9, 10, 12]
    assert not f.is_contiguous() and not m.is_contiguous()
    expected = naive_carafe(f, m, 3, 1, 2)
    for fn in (carafe, carafe_reference):
        out = fn(f.to(device), m.to(device), 3, 1, 2)
        torch.testing.assert_close(out.cpu().double(), expected, rtol=1e-5, atol=1e-5)


BAD_ARGS = [  # (features shape, masks shape, k, g, s, message)
    ((1, 4, 3, 3), (1, 16, 6, 6), 4, 1, 2, "kernel_size must be an odd integer >= 1, got 4"),
    ((1, 4, 3, 3), (1, 0, 6, 6), 0, 1, 2, "kernel_size must be an odd integer >= 1, got 0"),
    ((1, 4, 3, 3), (1, 27, 6, 6), 3, 3, 2, "group_size must divide the 4 feature channels"),
    ((1, 4, 3, 3), (1, 9, 3, 3), 3, 0, 1, "group_size must be an integer >= 1, got 0"),
    ((1, 4, 3, 3), (1, 9, 0, 0), 3, 1, 0, "scale_factor must be an integer >= 1, got 0"),
    ((1, 4, 3, 3), (1, 18, 6, 6), 3, 1, 2, "masks must be [N, group_size*kernel_size^2"),
    ((1, 4, 3, 3), (1, 9, 6, 5), 3, 1, 2, "got [1, 9, 6, 5]"),
    ((2, 4, 3, 3), (1, 9, 6, 6), 3, 1, 2, "= [2, 9, 6, 6]"),
    ((4, 3, 3), (1, 9, 6, 6), 3, 1, 2, "features must be 4-D, got shape [4, 3, 3]"),
]


@pytest.mark.parametrize("fn", [carafe, carafe_reference, torch.ops.attn_deploy.carafe])
@pytest.mark.parametrize("bad", BAD_ARGS, ids=[b[-1][:30] for b in BAD_ARGS])
def test_bad_arguments_raise_clear_errors(fn, bad):
    fshape, mshape, k, g, s, message = bad
    with pytest.raises(AttnDeployError) as err:
        fn(torch.randn(fshape), torch.rand(mshape), k, g, s)
    assert message in str(err.value)


def test_dtype_and_type_errors():
    f, m = make_inputs(1, 4, 3, 3, 3, 1, 2)
    with pytest.raises(AttnDeployError, match="masks must have the dtype and device of features"):
        carafe(f, m.double(), 3, 1, 2)
    with pytest.raises(AttnDeployError, match="features must be a floating-point tensor"):
        carafe(f.long(), m.long(), 3, 1, 2)
    with pytest.raises(AttnDeployError, match="kernel_size must be an odd integer >= 1, got 3.0"):
        carafe(f, m, 3.0, 1, 2)


@pytest.mark.parametrize("case,fast", [((1, 4, 2, 2, 3, 2, 2), False),
                                       ((1, 2, 2, 3, 5, 1, 1), False),
                                       ((2, 4, 3, 4, 3, 2, 2), True)])
def test_gradcheck(case, fast):
    *shape, k, g, s = case
    f, m = make_inputs(*shape, k, g, s, dtype=torch.float64, seed=3)
    f.requires_grad_(), m.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: carafe(a, b, k, g, s), (f, m), fast_mode=fast)


@pytest.mark.parametrize("device", DEVICES)
def test_fp32_backward_matches_reference_autograd(device):
    """The op's backward (native kernels when built) against autograd of the reference."""
    f, m = make_inputs(2, 8, 5, 6, 5, 2, 2, seed=4)
    grad = torch.randn(2, 8, 10, 12)
    f32 = [t.to(device).clone().requires_grad_() for t in (f, m)]
    carafe(*f32, 5, 2, 2).backward(grad.to(device))
    f64 = [t.double().requires_grad_() for t in (f, m)]
    carafe_reference(*f64, 5, 2, 2).backward(grad.double())
    for got, want in zip(f32, f64):
        torch.testing.assert_close(got.grad.cpu().double(), want.grad, rtol=1e-5, atol=1e-5)


class _Upsample(torch.nn.Module):
    def forward(self, x, m):
        return carafe(x, m, 3, 2, 2) * 2


def test_torch_export_keeps_the_custom_op():
    f, m = make_inputs(2, 4, 5, 6, 3, 2, 2)
    n, h, w = (torch.export.Dim(d) for d in "NHW")
    ep = torch.export.export(_Upsample(), (f, m), dynamic_shapes=(
        {0: n, 2: h, 3: w}, {0: n, 2: 2 * h, 3: 2 * w}))
    targets = [node.target for node in ep.graph.nodes if node.op == "call_function"]
    assert torch.ops.attn_deploy.carafe.default in targets
    f2, m2 = make_inputs(3, 4, 4, 7, 3, 2, 2, seed=5)
    torch.testing.assert_close(ep.module()(f2, m2), 2 * carafe_reference(f2, m2, 3, 2, 2))


def test_torch_compile_traces_forward_and_backward():
    f, m = make_inputs(2, 4, 5, 6, 3, 2, 2)
    compiled = torch.compile(lambda a, b: carafe(a, b, 3, 2, 2).square().sum(),
                             backend="aot_eager", fullgraph=True)
    fa, ma = f.clone().requires_grad_(), m.clone().requires_grad_()
    compiled(fa, ma).backward()
    fb, mb = f.clone().requires_grad_(), m.clone().requires_grad_()
    carafe_reference(fb, mb, 3, 2, 2).square().sum().backward()
    torch.testing.assert_close(fa.grad, fb.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ma.grad, mb.grad, rtol=1e-5, atol=1e-5)
