"""SQNR and cosine similarity against independent numpy formulas, and the int8 thresholds."""
import math

import numpy as np
import pytest

from attn_deploy.errors import AttnDeployError
from attn_deploy.quantize.accuracy import (THRESHOLDS, cosine_similarity, measure_accuracy,
                                           sqnr_db)


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5, 4)])
def test_metrics_match_numpy(shape):
    rng = np.random.default_rng(len(shape))
    ref = rng.standard_normal(shape).astype(np.float32)
    out = (ref + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    r, o = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    # independent forms: a ratio of norms in dB, and the angle from the law of cosines
    want_sqnr = 20 * np.log10(np.linalg.norm(r) / np.linalg.norm(o - r))
    want_cos = (np.sum(o * o) + np.sum(r * r) - np.sum((o - r) ** 2)) / (
        2 * np.sqrt(np.sum(o * o) * np.sum(r * r)))
    assert sqnr_db(out, ref) == pytest.approx(want_sqnr, rel=1e-9)
    assert cosine_similarity(out, ref) == pytest.approx(want_cos, rel=1e-9)
    acc = measure_accuracy({"y": out}, {"y": ref})
    assert acc.outputs[0].sqnr_db == pytest.approx(want_sqnr, rel=1e-9)
    assert acc.rel_l2 == pytest.approx(np.linalg.norm(o - r) / np.linalg.norm(r), rel=1e-9)
    assert acc.max_abs == pytest.approx(np.abs(o - r).max())


def _with_sqnr(ref, db, rng):
    noise = rng.standard_normal(ref.shape)
    noise *= np.linalg.norm(ref) / np.linalg.norm(noise) / 10 ** (db / 20)
    return ref + noise


@pytest.mark.parametrize("db,passes", [(25.0, True), (20.5, True), (19.5, False), (10.0, False)])
def test_int8_threshold_is_applied(db, passes):
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((4, 64))
    out = _with_sqnr(ref, db, rng)
    acc = measure_accuracy({"y": out}, {"y": ref}, "int8")
    assert acc.sqnr_db == pytest.approx(db, abs=1e-6)
    assert bool(acc) is passes
    assert ("PASS" if passes else "FAIL") in str(acc)


def test_fp32_threshold_is_stricter_than_int8():
    rng = np.random.default_rng(4)
    ref = rng.standard_normal(100)
    out = _with_sqnr(ref, 35.0, rng)
    assert measure_accuracy({"y": out}, {"y": ref}, "int8")
    assert not measure_accuracy({"y": out}, {"y": ref}, "fp16")
    assert measure_accuracy({"y": _with_sqnr(ref, 45.0, rng)}, {"y": ref}, "fp16")
    assert not measure_accuracy({"y": _with_sqnr(ref, 90.0, rng)}, {"y": ref}, "fp32")
    assert THRESHOLDS["fp32"].sqnr_db > THRESHOLDS["fp16"].sqnr_db > THRESHOLDS["int8"].sqnr_db


def test_sign_flip_fails_on_cosine():
    ref = np.linspace(-1, 1, 50)
    acc = measure_accuracy({"y": -ref}, {"y": ref}, "int8")
    assert not acc and acc.cosine == pytest.approx(-1.0)


def test_non_finite_shape_missing_and_integer_outputs():
    ref = np.ones((2, 3), np.float32)
    bad = ref.copy()
    bad[1, 2] = np.nan
    acc = measure_accuracy({"y": bad}, {"y": ref})
    assert not acc and "non-finite" in str(acc) and "(1, 2)" in str(acc)
    assert not measure_accuracy({"y": ref[:1]}, {"y": ref})
    assert "missing" in str(measure_accuracy({"z": ref}, {"y": ref}))
    ints = np.arange(6).reshape(2, 3)
    assert measure_accuracy({"i": ints}, {"i": ints})
    assert not measure_accuracy({"i": ints + 1}, {"i": ints})
    assert math.isinf(sqnr_db(ref, ref))


def test_unknown_precision_is_a_user_error():
    with pytest.raises(AttnDeployError, match="precision"):
        measure_accuracy({}, {}, "int4")
