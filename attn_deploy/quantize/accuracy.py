"""Precision-aware accuracy of a reduced-precision model against its fp32 reference.

Per output: the signal-to-quantization-noise ratio ``SQNR = 10 log10(||ref||^2 /
||out - ref||^2)`` in dB and the cosine similarity ``<out, ref> / (||out|| ||ref||)``, both over
the flattened tensor in float64. SQNR is the relative L2 error in dB (``-20 log10(rel_l2)``),
so 20 dB is a relative error of 10 %, 40 dB of 1 %. An output passes when both reach the
precision's thresholds; NaN or Inf where the reference is finite never passes.

Thresholds per precision (``THRESHOLDS``): int8 needs SQNR >= 20 dB and cosine >= 0.99 (the
project's goal over the blocks is a median of 30 dB); fp16 >= 40 dB (the parity rule's relative
error 1e-2); fp32 >= 100 dB (1e-5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.compare import Comparison


@dataclass(frozen=True)
class Thresholds:
    sqnr_db: float
    cosine: float


THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(100.0, 1.0 - 1e-9),
    "fp16": Thresholds(40.0, 0.9999),
    # 20 dB: a 10 % relative error; cos >= 0.99 allows an error uncorrelated with the signal of
    # up to ~14 %, so SQNR is the binding rule and the cosine catches sign or scale flips.
    "int8": Thresholds(20.0, 0.99),
}
# The goal over a set of blocks at int8 (the report's summary line).
INT8_MEDIAN_GOAL_DB = 30.0


def thresholds(precision: str) -> Thresholds:
    try:
        return THRESHOLDS[precision]
    except KeyError:
        raise AttnDeployError(f"precision: expected one of {list(THRESHOLDS)}, got "
                              f"{precision!r}") from None


def sqnr_db(out: np.ndarray, ref: np.ndarray) -> float:
    """SQNR of ``out`` against ``ref`` in dB; inf when they are equal, -inf when ``ref`` is all
    zero and ``out`` is not."""
    o, r = np.asarray(out, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    noise, signal = float(np.dot(o - r, o - r)), float(np.dot(r, r))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine_similarity(out: np.ndarray, ref: np.ndarray) -> float:
    """Cosine of the angle between the flattened tensors; 1.0 for two zero tensors."""
    o, r = np.asarray(out, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    no, nr = float(np.linalg.norm(o)), float(np.linalg.norm(r))
    if no == 0.0 or nr == 0.0:
        return 1.0 if no == nr else 0.0
    return float(np.dot(o, r) / (no * nr))


@dataclass
class OutputAccuracy:
    name: str
    passed: bool
    sqnr_db: float = float("nan")
    cosine: float = float("nan")
    max_abs: float = float("nan")
    thresholds: Thresholds | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed

    @property
    def rel_l2(self) -> float:
        """The same error as SQNR, as a relative L2 error (for tables that show that)."""
        return 10.0 ** (-self.sqnr_db / 20.0) if not math.isnan(self.sqnr_db) else math.inf

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        if self.reason:
            return f"{self.name}: {verdict} ({self.reason})"
        t = self.thresholds
        return (f"{self.name}: {verdict} SQNR {self.sqnr_db:.1f} dB (min {t.sqnr_db:.0f}), "
                f"cosine {self.cosine:.5f} (min {t.cosine:g}), max abs {self.max_abs:.3g}")


@dataclass
class Accuracy(Comparison):
    """Per-output accuracy; truthy when every output passes. A parity
    :class:`~attn_deploy.harness.compare.Comparison` (``rel_l2``, ``max_abs``, ``failures``)
    with SQNR and cosine added, so validation tables show either."""

    precision: str = "int8"

    @property
    def sqnr_db(self) -> float:
        """The worst SQNR over the outputs."""
        vals = [o.sqnr_db for o in self.outputs]
        return -math.inf if any(math.isnan(v) for v in vals) else min(vals, default=math.nan)

    @property
    def cosine(self) -> float:
        vals = [o.cosine for o in self.outputs]
        return -1.0 if any(math.isnan(v) for v in vals) else min(vals, default=math.nan)


def output_accuracy(name: str, out: np.ndarray, ref: np.ndarray,
                    limits: Thresholds) -> OutputAccuracy:
    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        return OutputAccuracy(name, False, thresholds=limits,
                              reason=f"shape {out.shape} != reference {ref.shape}")
    if not np.issubdtype(ref.dtype, np.floating):
        same = bool(np.array_equal(out, ref))
        return OutputAccuracy(name, same, math.inf if same else -math.inf, 1.0 if same else 0.0,
                              0.0 if same else math.nan, limits,
                              "" if same else "integer output differs from the reference")
    o64, r64 = out.astype(np.float64), ref.astype(np.float64)
    bad = ~np.isfinite(o64) & np.isfinite(r64)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        return OutputAccuracy(name, False, thresholds=limits,
                              reason=f"non-finite output {o64[idx]} at {idx} where the reference "
                                     f"is {r64[idx]:.6g}")
    fin = np.isfinite(r64)
    if not np.array_equal(o64[~fin], r64[~fin], equal_nan=True):
        return OutputAccuracy(name, False, thresholds=limits,
                              reason="non-finite values differ from the reference's")
    o64, r64 = o64[fin], r64[fin]
    s, c = sqnr_db(o64, r64), cosine_similarity(o64, r64)
    max_abs = float(np.abs(o64 - r64).max()) if o64.size else 0.0
    return OutputAccuracy(name, s >= limits.sqnr_db and c >= limits.cosine, s, c, max_abs, limits)


def measure_accuracy(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                     precision: str = "int8") -> Accuracy:
    """Accuracy of every reference output against the output of the same name."""
    limits = thresholds(precision)
    result = Accuracy(precision=precision)
    for name, ref in reference.items():
        if name not in outputs:
            result.outputs.append(OutputAccuracy(name, False, thresholds=limits,
                                                 reason=f"missing; got {list(outputs)}"))
        else:
            result.outputs.append(output_accuracy(name, outputs[name], ref, limits))
    return result
