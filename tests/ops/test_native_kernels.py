"""Native CARAFE and criss-cross attention kernels (plugins/) against independent oracles.

Oracles: float64 loops written from DESIGN.md's formulas (tiny sizes), a dense masked-attention
formulation of criss-cross attention whose autograd gives the gradients, and the package's PyTorch
references at larger random shapes. Outputs come from a poisoned allocator (NaN-filled memory
freed just before the call), so an element a kernel forgets to write shows up as NaN.
"""
import math

import numpy as np
import pytest
import torch

from attn_deploy.ops import _native


@pytest.fixture(scope="module")
def ext():
    """The native ops, built on first use (not at collection: that can take a while)."""
    ops = _native.load_extension()
    if ops is None:
        pytest.skip(f"native ops unavailable: {_native.native_available()['reason']}")
    return ops


def poisoned(expected, fn, *args):
    """fn(*args) after handing the allocator back NaN-filled blocks of the output sizes (those of
    the tensors in `expected`), which it then reuses for the outputs."""
    expected = expected if isinstance(expected, (tuple, list)) else [expected]
    junk = [torch.full((e.numel(),), float("nan"), device=args[0].device) for e in expected
            for _ in range(2)]
    del junk
    return fn(*args)


def rand(*shape, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)


# ---------------------------------------------------------------- oracles (float64)
def carafe_oracle(features, masks, k, g, s):
    """out[n,c,y,x] = sum_ij F[n,c,y//s+i-r,x//s+j-r] * M[n,(c//(C/G))*k*k+i*k+j,y,x], numpy."""
    f, m = features.double().numpy(), masks.double().numpy()
    n, c, h, w = f.shape
    r = (k - 1) // 2
    padded = np.zeros((n, c, h + 2 * r, w + 2 * r))
    padded[:, :, r:r + h, r:r + w] = f
    ys, xs = np.arange(h * s) // s, np.arange(w * s) // s
    out = np.zeros((n, c, h * s, w * s))
    for ch in range(c):
        grp = ch // (c // g)
        for i in range(k):
            for j in range(k):
                tap = padded[:, ch][:, ys[:, None] + i, xs[None, :] + j]
                out[:, ch] += tap * m[:, grp * k * k + i * k + j]
    return torch.from_numpy(out)


def carafe_oracle_grads(features, masks, grad, k, g, s):
    """Gradients by autograd through a float64 tap-gather formulation (padding + indexing)."""
    f = features.double().requires_grad_()
    m = masks.double().requires_grad_()
    n, c, h, w = f.shape
    r = (k - 1) // 2
    padded = torch.nn.functional.pad(f, (r, r, r, r))
    ys, xs = torch.arange(h * s) // s, torch.arange(w * s) // s
    group_of = torch.arange(c) // (c // g)
    out = 0
    for i in range(k):
        for j in range(k):
            tap = padded[:, :, ys[:, None] + i, xs[None, :] + j]
            out = out + tap * m[:, group_of * k * k + i * k + j]
    return torch.autograd.grad(out, (f, m), grad.double())


def cca_dense(q, k, v):
    """Criss-cross attention as dense attention over all H*W pixels with every position outside
    the pixel's row and column masked out (the pixel itself appears once)."""
    n, cq, h, w = q.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    cross = (ys[:, None] == ys[None, :]) | (xs[:, None] == xs[None, :])
    energy = torch.einsum("ncp,ncq->npq", q.reshape(n, cq, -1), k.reshape(n, cq, -1))
    att = energy.masked_fill(~cross, float("-inf")).softmax(-1)
    return torch.einsum("npq,ncq->ncp", att, v.reshape(n, v.shape[1], -1)).reshape(v.shape)


def cca_oracle(q, k, v):
    with torch.no_grad():
        return cca_dense(q.double(), k.double(), v.double())


def cca_oracle_grads(q, k, v, grad):
    leaves = [t.double().requires_grad_() for t in (q, k, v)]
    return torch.autograd.grad(cca_dense(*leaves), leaves, grad.double())


def assert_close(actual, expected, rtol, name):
    """Every element: |a - e| <= rtol * max|e| (+ a floor for all-zero tensors); no NaN."""
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert not torch.isnan(actual).any(), f"{name}: NaN (unwritten or bad element)"
    err = (actual.double().cpu() - expected.double().cpu()).abs()
    scale = max(expected.abs().max().item(), 1e-30)
    worst = err.argmax().item() if err.numel() else 0
    assert err.numel() == 0 or err.max().item() <= rtol * scale + 1e-30, \
        f"{name}: max error {err.max().item():.3g} at flat {worst} (scale {scale:.3g})"


# ---------------------------------------------------------------- CARAFE
CARAFE_SHAPES = [  # N, C, H, W, k, G, s  (W*s >= 16 exercises SIMD packs and single-pixel tails)
    (1, 4, 3, 4, 5, 1, 2), (2, 6, 5, 9, 3, 3, 2), (1, 4, 4, 7, 1, 2, 3), (1, 8, 3, 11, 7, 4, 1),
    (2, 4, 6, 5, 5, 2, 1), (1, 2, 1, 1, 3, 1, 2), (1, 3, 1, 10, 5, 1, 2), (1, 2, 9, 1, 3, 2, 4),
    (1, 3, 4, 19, 17, 1, 3), (1, 3, 3, 4, 3, 1, 5), (1, 4, 2, 3, 3, 2, 6),  # wide k, odd/even s
]


@pytest.mark.parametrize("shape", CARAFE_SHAPES)
def test_carafe_matches_float64_oracle(ext, shape):
    n, c, h, w, k, g, s = shape
    f, m = rand(n, c, h, w, seed=1), rand(n, g * k * k, h * s, w * s, seed=2)
    expected = carafe_oracle(f, m, k, g, s)
    assert_close(poisoned(expected, ext.carafe_forward, f, m, k, g, s), expected, 1e-5,
                 "carafe forward")
    grad = rand(n, c, h * s, w * s, seed=3)
    of, om = carafe_oracle_grads(f, m, grad, k, g, s)
    gf, gm = poisoned((of, om), ext.carafe_backward, grad, f, m, k, g, s)
    assert_close(gf, of, 1e-5, "carafe grad features")
    assert_close(gm, om, 1e-5, "carafe grad masks")


@pytest.mark.parametrize("shape", [(2, 64, 20, 27, 5, 1, 2), (1, 32, 16, 16, 3, 4, 4),
                                   (3, 16, 13, 40, 7, 2, 1)])
def test_carafe_matches_reference_at_larger_shapes(ext, shape):
    from attn_deploy.ops import carafe_reference
    n, c, h, w, k, g, s = shape
    f, m = rand(n, c, h, w, seed=4), rand(n, g * k * k, h * s, w * s, seed=5).softmax(1)
    expected = carafe_reference(f, m, k, g, s)
    assert_close(poisoned(expected, ext.carafe_forward, f, m, k, g, s), expected, 1e-5,
                 "carafe vs reference")


@pytest.mark.parametrize("shape", [(1, 37, 100, 76, 3, 1, 2), (1, 36, 200, 150, 3, 2, 1)])
def test_carafe_streamed_outputs_match_the_reference(ext, shape):
    """Float outputs of 4 MiB or more are written with streaming stores where a pack is aligned
    (kStreamOutputBytes, carafe_cpu.cpp): rows whose start is not aligned (W*s not a multiple of
    the pack), channel-block tails (C = 37, 18 per group) and short row tails in the same call."""
    from attn_deploy.ops import carafe_reference
    n, c, h, w, k, g, s = shape
    assert n * c * h * s * w * s * 4 >= 4 << 20  # else this tests the cached stores again
    f, m = rand(n, c, h, w, seed=50), rand(n, g * k * k, h * s, w * s, seed=51).softmax(1)
    expected = carafe_reference(f, m, k, g, s)
    assert_close(poisoned(expected, ext.carafe_forward, f, m, k, g, s), expected, 1e-5,
                 "carafe streamed vs reference")


def test_carafe_float16_accumulates_in_float32(ext):
    n, c, h, w, k, g, s = 2, 8, 6, 19, 5, 2, 2  # W = 19: whole SIMD packs (s = 2: paired masks)
    f, m = rand(n, c, h, w, seed=6, dtype=torch.float16), rand(n, g * k * k, h * s, w * s, seed=7,
                                                               dtype=torch.float16)
    expected = carafe_oracle(f, m, k, g, s)
    out = poisoned(expected, ext.carafe_forward, f, m, k, g, s)
    assert out.dtype == torch.float16
    assert_close(out, expected, 2e-3, "carafe fp16")  # about the fp16 rounding of the output
    grad = rand(n, c, h * s, w * s, seed=8, dtype=torch.float16)
    of, om = carafe_oracle_grads(f, m, grad, k, g, s)
    gf, gm = poisoned((of, om), ext.carafe_backward, grad, f, m, k, g, s)
    assert_close(gf, of, 2e-3, "carafe fp16 grad features")
    assert_close(gm, om, 2e-3, "carafe fp16 grad masks")


def test_carafe_non_contiguous_inputs_give_the_contiguous_result(ext):
    f = rand(2, 9, 7, 8, seed=9).permute(0, 3, 1, 2)  # [2, 8, 9, 7], channels-last strides
    m = rand(2, 50, 18, 28, seed=10)[:, ::2, :, ::2]  # [2, 25, 18, 14]
    assert not f.is_contiguous() and not m.is_contiguous()
    expected = ext.carafe_forward(f.contiguous(), m.contiguous(), 5, 1, 2)
    assert torch.equal(ext.carafe_forward(f, m, 5, 1, 2), expected)
    grad = rand(2, 8, 18, 14, seed=11).transpose(2, 3).contiguous().transpose(2, 3)
    contiguous = [t.contiguous() for t in (grad, f, m)]
    for got, want in zip(ext.carafe_backward(grad, f, m, 5, 1, 2),
                         ext.carafe_backward(*contiguous, 5, 1, 2)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("n,c,h,w", [(0, 4, 5, 5), (2, 0, 5, 5), (2, 4, 0, 5), (2, 4, 5, 0)])
def test_carafe_empty_inputs(ext, n, c, h, w):
    g = 2 if c else 1
    f, m = torch.randn(n, c, h, w), torch.randn(n, g * 9, 2 * h, 2 * w)
    out = ext.carafe_forward(f, m, 3, g, 2)
    assert out.shape == (n, c, 2 * h, 2 * w)
    gf, gm = ext.carafe_backward(torch.randn(n, c, 2 * h, 2 * w), f, m, 3, g, 2)
    assert gf.shape == f.shape and gm.shape == m.shape
    assert not gf.any() and not gm.any()  # nothing reaches the loss: zero gradients


# ---------------------------------------------------------------- criss-cross attention
CCA_SHAPES = [(1, 2, 3, 4, 5), (2, 3, 5, 7, 9), (1, 1, 2, 1, 1), (1, 2, 3, 1, 20),
              (2, 2, 4, 17, 1), (1, 4, 6, 9, 19)]  # N, Cq, C, H, W


@pytest.mark.parametrize("shape", CCA_SHAPES)
def test_criss_cross_matches_dense_oracle(ext, shape):
    n, cq, c, h, w = shape
    q, k, v = rand(n, cq, h, w, seed=12), rand(n, cq, h, w, seed=13), rand(n, c, h, w, seed=14)
    expected = cca_oracle(q, k, v)
    assert_close(poisoned(expected, ext.criss_cross_attention_forward, q, k, v), expected, 1e-5,
                 "cca forward")
    grad = rand(n, c, h, w, seed=15)
    expected = cca_oracle_grads(q, k, v, grad)
    got = poisoned(expected, ext.criss_cross_attention_backward, grad, q, k, v)
    for name, a, e in zip(("query", "key", "value"), got, expected):
        assert_close(a, e, 1e-5, f"cca grad {name}")


def test_criss_cross_softmax_is_stable_for_large_energies(ext):
    q, k = rand(1, 4, 6, 7, seed=16) * 30, rand(1, 4, 6, 7, seed=17) * 30
    v = rand(1, 3, 6, 7, seed=18)
    assert_close(ext.criss_cross_attention_forward(q, k, v), cca_oracle(q, k, v), 1e-5, "cca large")


@pytest.mark.parametrize("shape", [(1, 5, 7, 3, 4), (1, 6, 80, 33, 40)])
def test_carafe_nan_or_inf_mask_on_a_tap_outside_the_image_propagates(ext, shape):
    """The contract counts out-of-image features as 0, and 0 * NaN = 0 * Inf = NaN: the native
    output has NaN exactly where the reference (and ONNX Runtime) has it."""
    from attn_deploy.ops import carafe_reference
    n, c, h, w = shape[:4]
    k, s = 5, 2
    f, m = rand(n, c, h, w, seed=41), rand(n, k * k, h * s, w * s, seed=42)
    m[0, 0, 0, 1] = float("nan")      # tap (0, 0) of output (0, 1): feature row -2, outside
    m[0, k * k - 1, -1, 3] = float("inf")  # tap (4, 4) of the last output row: outside
    m[0, 2, 5, 2 * w - 1] = float("nan")   # tap (0, 2) of output (5, last): row 0, inside
    expected = carafe_reference(f, m, k, 1, s)
    got = poisoned(expected, ext.carafe_forward, f, m, k, 1, s)
    nan = torch.isnan(expected)
    assert nan[0, :, 0, 1].all() and nan[0, :, -1, 3].all() and nan[0, :, 5, -1].all()
    assert torch.equal(torch.isnan(got), nan)
    assert_close(got.masked_fill(nan, 0), expected.masked_fill(nan, 0), 1e-5, "carafe rest")


@pytest.mark.parametrize("shape", [(1, 2, 4, 5, 6), (2, 3, 64, 33, 40)])  # 1, 2 channel blocks
def test_criss_cross_all_energies_minus_inf_gives_nan_like_the_reference(ext, shape):
    """A pixel whose energies are all -inf (an infinite query against negative keys): softmax
    over nothing but -inf is NaN in the reference; the native kernels say the same instead of
    putting the weight on the dead self slot (which returned value)."""
    from attn_deploy.ops import criss_cross_attention_reference
    n, cq, c, h, w = shape
    q, v = rand(n, cq, h, w, seed=43), rand(n, c, h, w, seed=44)
    k = -rand(n, cq, h, w, seed=45).abs() - 0.1
    q[-1, :, 1, 2] = float("inf")
    expected = criss_cross_attention_reference(q, k, v)
    got = poisoned(expected, ext.criss_cross_attention_forward, q, k, v)
    nan = torch.isnan(expected)
    assert nan[-1, :, 1, 2].all() and nan.sum() == c
    assert torch.equal(torch.isnan(got), nan)
    assert_close(got.masked_fill(nan, 0), expected.masked_fill(nan, 0), 1e-5, "cca rest")


# Channel blocks of 32 with a tail (37, 40), pixel rows in groups of 4 with a tail (6, 33),
# rows of 2 SIMD packs, 1 pack and single pixels (51 = 2 * 16 + 16 + 3 with AVX-512, 6 * 8 + 3
# with AVX2), non-square maps.
@pytest.mark.parametrize("shape", [(2, 8, 64, 24, 37), (1, 16, 32, 40, 40), (2, 8, 64, 33, 40),
                                   (1, 4, 40, 40, 41), (2, 5, 37, 6, 51)])
def test_criss_cross_matches_reference_at_larger_shapes(ext, shape):
    from attn_deploy.ops import criss_cross_attention_reference
    n, cq, c, h, w = shape
    q, k, v = rand(n, cq, h, w, seed=19), rand(n, cq, h, w, seed=20), rand(n, c, h, w, seed=21)
    expected = criss_cross_attention_reference(q, k, v)
    assert_close(poisoned(expected, ext.criss_cross_attention_forward, q, k, v), expected, 1e-5,
                 "cca vs reference")
    assert_close(ext.criss_cross_attention_forward(q, k, v), cca_oracle(q, k, v), 1e-5,
                 "cca vs float64 oracle")


@pytest.mark.parametrize("channels", [5, 7])  # C*H*W <= 2^16: one pass per row group; above: two
def test_criss_cross_forward_in_bands_of_rows(ext, channels):
    """The forward keeps the weights of at most 2^21 floats of pixel rows (cpu_ops.h): at 100x100,
    104 rows a band, so bands end inside a batch item and inside a group of 4 rows."""
    from attn_deploy.ops import criss_cross_attention_reference
    q, k = rand(3, 2, 100, 100, seed=52), rand(3, 2, 100, 100, seed=53)
    v = rand(3, channels, 100, 100, seed=54)
    expected = criss_cross_attention_reference(q.double(), k.double(), v.double())
    assert_close(poisoned(expected, ext.criss_cross_attention_forward, q, k, v), expected, 1e-5,
                 "cca in bands")


def test_criss_cross_float16_accumulates_in_float32(ext):
    q, k, v = (rand(2, 4, 7, 18, seed=s, dtype=torch.float16) for s in (22, 23, 24))
    v = v.repeat(1, 2, 1, 1)
    expected = cca_oracle(q, k, v)
    out = poisoned(expected, ext.criss_cross_attention_forward, q, k, v)
    assert out.dtype == torch.float16
    assert_close(out, expected, 2e-3, "cca fp16")
    grad = rand(2, 8, 7, 18, seed=25, dtype=torch.float16)
    expected = cca_oracle_grads(q, k, v, grad)
    got = poisoned(expected, ext.criss_cross_attention_backward, grad, q, k, v)
    for name, a, e in zip("qkv", got, expected):
        assert_close(a, e, 5e-3, f"cca fp16 grad {name}")


def test_criss_cross_float16_over_several_channel_blocks(ext):
    q, k, v = (rand(1, 4, 32, 33, seed=s, dtype=torch.float16) for s in (49, 50, 51))
    v = v.repeat(1, 16, 1, 1)  # 512 channels: 16 blocks of 32, the weights kept in float32
    expected = cca_oracle(q, k, v)
    out = poisoned(expected, ext.criss_cross_attention_forward, q, k, v)
    assert out.dtype == torch.float16
    assert_close(out, expected, 2e-3, "cca fp16 channel blocks")


def test_criss_cross_non_contiguous_inputs_give_the_contiguous_result(ext):
    q = rand(2, 9, 20, 3, seed=26).permute(0, 3, 2, 1)  # [2, 3, 20, 9]
    k = rand(2, 3, 20, 18, seed=27)[..., ::2]
    v = rand(2, 20, 9, 5, seed=28).permute(0, 3, 1, 2)  # [2, 5, 20, 9]
    expected = ext.criss_cross_attention_forward(q.contiguous(), k.contiguous(), v.contiguous())
    assert torch.equal(ext.criss_cross_attention_forward(q, k, v), expected)


@pytest.mark.parametrize("n,cq,c,h,w", [(0, 2, 3, 4, 5), (2, 2, 0, 4, 5), (2, 2, 3, 0, 5),
                                        (2, 2, 3, 4, 0)])
def test_criss_cross_empty_inputs(ext, n, cq, c, h, w):
    q, k, v = torch.randn(n, cq, h, w), torch.randn(n, cq, h, w), torch.randn(n, c, h, w)
    assert ext.criss_cross_attention_forward(q, k, v).shape == (n, c, h, w)
    grads = ext.criss_cross_attention_backward(torch.randn(n, c, h, w), q, k, v)
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]
    assert not any(g.any() for g in grads)


# ---------------------------------------------------------------- both ops
def test_results_do_not_depend_on_thread_count(ext):
    """Each element is computed by the same arithmetic whatever the partition of rows between
    threads (no sum is split between tasks): bitwise equal results."""
    f, m = rand(2, 16, 12, 21, seed=29), rand(2, 25, 24, 42, seed=30)
    q, k, v = rand(2, 4, 12, 21, seed=31), rand(2, 4, 12, 21, seed=32), rand(2, 16, 12, 21, seed=33)
    big = [rand(1, 4, 33, 40, seed=46), rand(1, 4, 33, 40, seed=47), rand(1, 64, 33, 40, seed=48)]
    threads = torch.get_num_threads()
    outs = []
    try:
        for t in (1, max(2, threads)):
            torch.set_num_threads(t)
            outs.append((ext.carafe_forward(f, m, 5, 1, 2),
                         *ext.carafe_backward(m[:, :16], f, m, 5, 1, 2),
                         ext.criss_cross_attention_forward(q, k, v),
                         *ext.criss_cross_attention_backward(v, q, k, v),
                         ext.criss_cross_attention_forward(*big)))  # 2 channel blocks
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*outs))


def _carafe(f_shape, m_shape, k=3, g=1, s=2):
    return lambda ext: ext.carafe_forward(torch.randn(*f_shape), torch.randn(*m_shape), k, g, s)


def _cca(q_shape, k_shape, v_shape):
    return lambda ext: ext.criss_cross_attention_forward(
        torch.randn(*q_shape), torch.randn(*k_shape), torch.randn(*v_shape))


@pytest.mark.parametrize("call,message", [
    (_carafe((1, 4, 5), (1, 9, 10, 10)), "features must be a 4-D"),
    (_carafe((1, 4, 5, 5), (1, 9, 10, 10), k=4), "kernel_size must be odd"),
    (_carafe((1, 4, 5, 5), (1, 27, 10, 10), g=3), "group_size must be >= 1 and divide"),
    (_carafe((1, 4, 5, 5), (1, 9, 10, 10), s=0), "scale_factor must be in"),
    (_carafe((1, 4, 5, 5), (1, 9, 10, 9)), "masks must have shape"),
    (lambda ext: ext.carafe_backward(torch.randn(1, 4, 10, 9), torch.randn(1, 4, 5, 5),
                                     torch.randn(1, 9, 10, 10), 3, 1, 2), "grad_output must have"),
    (_cca((1, 2, 4, 4), (1, 3, 4, 4), (1, 5, 4, 4)), "key must have the shape of query"),
    (_cca((1, 2, 4, 4), (1, 2, 4, 4), (1, 5, 4, 3)), "value must be"),
])
def test_bad_arguments_raise_value_errors_naming_them(ext, call, message):
    with pytest.raises(ValueError, match=message):
        call(ext)


def test_unsupported_dtypes_raise_type_errors(ext):
    with pytest.raises(TypeError, match="float32 or float16"):
        ext.carafe_forward(torch.randn(1, 4, 5, 5, dtype=torch.float64),
                           torch.randn(1, 9, 10, 10, dtype=torch.float64), 3, 1, 2)
    with pytest.raises(TypeError, match="dtype of query"):
        ext.criss_cross_attention_forward(torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4).half(),
                                          torch.randn(1, 5, 4, 4))


# ---------------------------------------------------------------- CUDA (same kernels as TensorRT)
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_cuda_kernels_match_the_oracles(ext, dtype, rtol):
    if not (torch.cuda.is_available() and _native.native_available()["cuda"]):
        pytest.skip(f"no CUDA device or no CUDA build of the native ops "
                    f"({_native.native_available()['reason'] or 'CPU-only torch'})")
    n, c, h, w, k, g, s = 2, 8, 7, 13, 5, 2, 2
    f = rand(n, c, h, w, seed=34, dtype=dtype)
    m = rand(n, g * k * k, h * s, w * s, seed=35, dtype=dtype)
    grad = rand(n, c, h * s, w * s, seed=36, dtype=dtype)
    cu = [t.cuda() for t in (grad, f, m)]
    expected = carafe_oracle(f, m, k, g, s)
    assert_close(poisoned(expected, ext.carafe_forward, *cu[1:], k, g, s), expected, rtol,
                 "cuda carafe")
    expected = carafe_oracle_grads(f, m, grad, k, g, s)
    for a, e in zip(poisoned(expected, ext.carafe_backward, *cu, k, g, s), expected):
        assert_close(a, e, rtol, "cuda carafe backward")
    q, kk, v = (rand(2, 3, 9, 14, seed=sd, dtype=dtype) for sd in (37, 38, 39))
    grad = rand(2, 3, 9, 14, seed=40, dtype=dtype)
    cu = [t.cuda() for t in (grad, q, kk, v)]
    expected = cca_oracle(q, kk, v)
    assert_close(poisoned(expected, ext.criss_cross_attention_forward, *cu[1:]), expected, rtol,
                 "cuda cca")
    expected = cca_oracle_grads(q, kk, v, grad)
    for a, e in zip(poisoned(expected, ext.criss_cross_attention_backward, *cu), expected):
        assert_close(a, e, 2.5 * rtol, "cuda cca backward")


def test_loader_reports_its_state(ext, monkeypatch):
    state = _native.native_available()
    assert state["cpu"] is True and state["reason"] is None
    assert state["cuda"] == (torch.cuda.is_available() and torch.version.cuda is not None)
    monkeypatch.setenv("ATTN_DEPLOY_NO_NATIVE", "1")
    assert _native.load_extension() is None
    assert "ATTN_DEPLOY_NO_NATIVE" in _native.native_available()["reason"]
    assert math.isfinite(state["build_seconds"])


def test_concurrent_first_builds_are_serialised(tmp_path):
    """Two processes building into the same cache directory take turns (flock), and a stale torch
    file baton left by a killed build does not block them. torch's compiler is replaced by a stub
    that records when it runs."""
    import subprocess
    import sys
    build_dir = tmp_path / "torch_ext" / "key"
    build_dir.mkdir(parents=True)
    (build_dir / "lock").touch()  # the stale baton
    log = tmp_path / "builds.log"
    script = (
        "import sys, time, torch.utils.cpp_extension as ce\n"
        "from pathlib import Path\n"
        "from attn_deploy.ops import _native\n"
        "def stub(**kwargs):\n"
        "    start = time.time(); time.sleep(1.0)\n"
        "    open(sys.argv[1], 'a').write(f'{start} {time.time()}\\n')\n"
        "ce.load = stub\n"
        "_native._build(list(_native.CPU_SOURCES), [], False, Path(sys.argv[2]))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(log), str(build_dir)])
             for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], f"builds overlapped: {spans}"
    assert not (build_dir / "lock").exists()
