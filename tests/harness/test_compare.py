"""The comparator: errors measured right, tolerances per precision, NaN never passes."""
import numpy as np
import pytest

from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.compare import TOLERANCES, compare


def _ref(seed=0, shape=(4, 5)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_identical_passes_and_reports_zero():
    r = _ref()
    c = compare({"y": r.copy()}, {"y": r})
    assert c and c.rel_l2 == 0 and c.max_abs == 0


def test_relative_l2_and_worst_element_are_exact():
    r = _ref()
    out = r.copy()
    out[2, 3] += 0.5
    c = compare({"y": out}, {"y": r})
    o = c.outputs[0]
    assert not c
    assert o.worst_index == (2, 3) and o.max_abs == pytest.approx(0.5, rel=1e-6)
    assert o.rel_l2 == pytest.approx(0.5 / np.linalg.norm(r.astype(np.float64)), rel=1e-5)
    assert "(2, 3)" in str(o)


def test_tolerance_boundary_per_precision():
    r = np.ones(10000, np.float32)
    # a uniform relative perturbation e gives rel_l2 == e
    assert compare({"y": r * (1 + 5e-6)}, {"y": r}, "fp32")
    assert not compare({"y": r * (1 + 5e-5)}, {"y": r}, "fp32")
    assert compare({"y": r * (1 + 5e-3)}, {"y": r}, "fp16")
    assert not compare({"y": r * (1 + 5e-2)}, {"y": r}, "fp16")
    assert TOLERANCES["fp16"] > TOLERANCES["fp32"]
    with pytest.raises(AttnDeployError, match="precision"):
        compare({"y": r}, {"y": r}, "int4")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_output_never_passes(bad):
    r = _ref()
    out = r.copy()
    out[0, 0] = bad
    c = compare({"y": out}, {"y": r}, "fp16", rtol=1.0)
    assert not c and "non-finite" in str(c)


def test_matching_nan_positions_pass_only_when_allowed_and_equal():
    r = _ref()
    r[1, 1] = np.nan
    out = r.copy()
    c = compare({"y": out}, {"y": r})
    assert not c and "1 NaN" in str(c)  # both sides NaN: two broken computations agreeing
    assert compare({"y": out}, {"y": r}, allow_nonfinite=True)
    out[1, 1] = 0.0
    assert not compare({"y": out}, {"y": r}, allow_nonfinite=True)


def test_shape_missing_output_and_integer_outputs():
    r = _ref()
    assert "shape" in str(compare({"y": r[:2]}, {"y": r}))
    assert "missing" in str(compare({"z": r}, {"y": r}))
    i = np.arange(6)
    assert compare({"i": i.copy()}, {"i": i})
    j = i.copy()
    j[3] = 0
    assert not compare({"i": j}, {"i": i})


def test_zero_reference_is_degenerate_never_a_pass():
    z = np.zeros(5, np.float32)
    c = compare({"y": z}, {"y": z})
    assert not c and c.degenerate and c.status == "degenerate" and "all zeros" in str(c)
    assert not compare({"y": z + 1e-3}, {"y": z})


def test_atol_passes_outputs_near_zero_but_never_non_finite():
    ref = np.full(100, 1e-9, np.float32)
    out = ref + np.float32(3e-7)  # a relative error of 300, an absolute one of 3e-7
    assert not compare({"y": out}, {"y": ref})
    c = compare({"y": out}, {"y": ref}, atol=1e-6)
    assert c and c.outputs[0].atol == 1e-6 and "atol 1e-06" in str(c)
    assert not compare({"y": out}, {"y": ref}, atol=1e-7)
    out[3] = np.nan
    assert not compare({"y": out}, {"y": ref}, atol=1e3)
