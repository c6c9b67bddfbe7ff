"""The deploy-friendly adaptive pooling layer against PyTorch's, in eager and after export."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import attn_deploy as ad
from attn_deploy.modules.adaptive_pool import (AdaptiveAvgPool2d, AdaptiveMaxPool2d,
                                               AdaptivePool2d, adaptive_pool2d,
                                               pyramid_avg_pool)

OUTPUT_SIZES = [1, 2, 3, 5, 6, 8, (3, 5), (8, 1), (None, 4), (2, None)]
EAGER_SIZES = [(h, w) for h in range(1, 41) for w in (1, 2, 3, 7, 13, 24, 40)
               if (h * 7 + w) % 3 == 0 or h <= 9]


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("output_size", OUTPUT_SIZES, ids=str)
def test_eager_matches_torch_for_many_input_sizes(output_size):
    g = torch.Generator().manual_seed(0)
    for h, w in EAGER_SIZES:
        x = torch.randn(2, 3, h, w, generator=g)
        avg = adaptive_pool2d(x, output_size, "avg")
        torch.testing.assert_close(avg, F.adaptive_avg_pool2d(x, output_size),
                                   rtol=1e-6, atol=1e-6, msg=lambda m: f"{h}x{w}: {m}")
        # max is exact: same elements, no arithmetic
        assert torch.equal(adaptive_pool2d(x, output_size, "max"),
                           F.adaptive_max_pool2d(x, output_size)), (h, w)


def test_module_forms_and_3d_input():
    x = torch.randn(4, 11, 9)
    torch.testing.assert_close(AdaptiveAvgPool2d((3, 4))(x), nn.AdaptiveAvgPool2d((3, 4))(x))
    assert torch.equal(AdaptiveMaxPool2d(5)(x), nn.AdaptiveMaxPool2d(5)(x))
    assert "mode='max'" in repr(AdaptiveMaxPool2d(5))


def test_max_does_not_leak_inf_across_bins():
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = float("inf")
    x[..., 3, 3] = 1.0
    torch.testing.assert_close(adaptive_pool2d(x, 2, "max"), F.adaptive_max_pool2d(x, 2))


def test_pyramid_pool_equals_concatenated_adaptive_pools():
    x = torch.randn(2, 5, 17, 13)
    sizes = (1, 3, 6, 8)
    expected = torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in sizes], 2)
    got = pyramid_avg_pool(x, sizes)
    assert got.shape == (2, 5, 110)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, (1, 2, 3), "2", 2.0, True, (3, 0)])
def test_bad_output_size(bad):
    with pytest.raises(ad.AttnDeployError, match="output_size"):
        AdaptivePool2d(bad)


def test_bad_mode_and_inputs():
    with pytest.raises(ad.AttnDeployError, match="mode"):
        AdaptivePool2d(2, mode="min")
    with pytest.raises(ad.AttnDeployError, match=r"\[N, C, H, W\]"):
        adaptive_pool2d(torch.randn(5, 5), 2)
    with pytest.raises(ad.AttnDeployError, match="floating"):
        adaptive_pool2d(torch.ones(1, 1, 4, 4, dtype=torch.int64), 2)
    with pytest.raises(ad.AttnDeployError, match=r"\[N, C, H, W\]"):
        pyramid_avg_pool(torch.randn(3, 4, 4), (1, 2))


class _AllPools(nn.Module):
    """Every output size, avg and max, plus the PSP pyramid, from one input."""

    def __init__(self):
        super().__init__()
        self.pools = nn.ModuleList(AdaptivePool2d(s, m) for s in OUTPUT_SIZES
                                   for m in ("avg", "max"))

    def forward(self, x):
        return tuple(p(x) for p in self.pools) + (pyramid_avg_pool(x, (1, 3, 6, 8)),)


def _expected(x: torch.Tensor) -> list[np.ndarray]:
    out = []
    for s in OUTPUT_SIZES:
        out += [F.adaptive_avg_pool2d(x, s).numpy(), F.adaptive_max_pool2d(x, s).numpy()]
    out.append(torch.cat([F.adaptive_avg_pool2d(x, s).flatten(2) for s in (1, 3, 6, 8)],
                         2).numpy())
    return out


# TensorRT's ONNX parser handles all of these; no pooling node sized for the example input.
_ALLOWED_OPS = {"Shape", "Range", "Mul", "Add", "Less", "And", "Cast", "ReduceSum", "Div",
                "Unsqueeze", "Squeeze", "Reshape", "Transpose", "MatMul", "Where",
                "ReduceMax", "ReduceMean", "Concat", "Constant", "Expand", "Slice", "Gather"}


def test_one_export_matches_torch_at_many_sizes(tmp_path):
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    path = ad.export_onnx(_AllPools(), (torch.randn(2, 3, 14, 11),), tmp_path / "pools.onnx",
                          input_names=["x"],
                          output_names=[f"y{i}" for i in range(2 * len(OUTPUT_SIZES) + 1)],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    proto = onnx.load(path)
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= _ALLOWED_OPS, ops - _ALLOWED_OPS
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = ReferenceEvaluator(proto)
    g = torch.Generator().manual_seed(1)
    for i, (h, w) in enumerate([(14, 11), (17, 20), (1, 1), (2, 3), (5, 8), (9, 40), (37, 7)]):
        x = torch.randn(3, 3, h, w, generator=g)
        expected = _expected(x)
        runs = [session.run(None, {"x": x.numpy()})]
        if i < 3:  # the numpy reference evaluator is slow; a few sizes suffice
            runs.append(reference.run(None, {"x": x.numpy()}))
        for got in runs:
            for k, (a, b) in enumerate(zip(got, expected)):
                assert a.shape == b.shape, (h, w, k)
                assert _rel(a, b) <= 1e-6, (h, w, k, _rel(a, b))
