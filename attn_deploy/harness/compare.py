"""Numerical parity between a runner's outputs and the reference's (after Polygraphy's
comparator): per output the max absolute error, the relative L2 error and the worst element,
judged against a tolerance per precision. Results are truthy when they pass.

The pass rule is the relative L2 error ``||out - ref|| / ||ref|| <= rtol``, which does not
blow up on the near-zero elements that make element-wise relative errors meaningless. An
optional ``atol`` also passes an output whose max absolute error is within it (for outputs that
are almost zero, where any relative measure is noise). Any shape mismatch fails. Integer and
boolean outputs must match exactly.

Non-finite values fail, on either side, as Polygraphy's ``run --validate`` does: a NaN in the
reference and the same NaN in the runtime is two broken computations agreeing, not parity. The
row says how many elements were NaN or Inf on each side. ``allow_nonfinite=True`` accepts them
where the caller expects them (a -inf mask output), provided both sides have the same non-finite
values at the same places. A reference that is all zeros or has no finite element is a
*degenerate* test (any runtime that writes zeros, or nothing, would match it): never a pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from attn_deploy.errors import AttnDeployError

# fp32: rounding differences between kernels reach ~1e-6 relative on reductions over a few
# thousand terms; 1e-5 leaves a margin of ten. fp16 has a 2^-11 ulp (4.9e-4); accumulated over
# the blocks' reductions ~1e-3 is typical, so 1e-2 separates rounding from real bugs.
TOLERANCES: dict[str, float] = {"fp32": 1e-5, "fp16": 1e-2}
# Below this norm the reference is treated as all zeros: a degenerate test.
_ZERO_NORM = 1e-30


@dataclass
class OutputComparison:
    name: str
    passed: bool
    rel_l2: float = float("nan")
    max_abs: float = float("nan")
    worst_index: tuple = ()
    worst_value: float = float("nan")
    worst_reference: float = float("nan")
    tolerance: float = float("nan")
    reason: str = ""
    atol: float | None = None
    degenerate: bool = False   # the reference cannot tell a right output from a wrong one
    nonfinite: str = ""        # "output 3 NaN, 0 Inf of 12; reference 0 NaN, 0 Inf" when any

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else ("DEGENERATE" if self.degenerate else "FAIL")

    def __str__(self) -> str:
        if self.reason:
            return f"{self.name}: {self.verdict} ({self.reason})"
        tol = f"tol {self.tolerance:.0e}" + (f", atol {self.atol:.0e}" if self.atol else "")
        return (f"{self.name}: {self.verdict} rel_l2={self.rel_l2:.2e} ({tol}) "
                f"max_abs={self.max_abs:.2e} worst at {self.worst_index}: "
                f"{self.worst_value:.6g} vs {self.worst_reference:.6g}")


@dataclass
class Comparison:
    outputs: list[OutputComparison] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outputs) and all(self.outputs)

    @property
    def rel_l2(self) -> float:
        """The worst relative L2 error over the outputs."""
        vals = [o.rel_l2 for o in self.outputs]
        return float("inf") if any(np.isnan(vals)) else max(vals, default=float("nan"))

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=float("nan"))

    @property
    def degenerate(self) -> bool:
        """No output failed outright, but at least one reference could not judge (all zeros,
        or no finite element): the verdict is "degenerate", not a pass."""
        return any(o.degenerate for o in self.outputs) and \
            not any(not o and not o.degenerate for o in self.outputs)

    @property
    def status(self) -> str:
        return "pass" if self else ("degenerate" if self.degenerate else "fail")

    def failures(self) -> list[OutputComparison]:
        return [o for o in self.outputs if not o]

    def __str__(self) -> str:
        return "\n".join(str(o) for o in self.outputs)


def tolerance(precision: str, rtol: float | None = None) -> float:
    if rtol is not None:
        return float(rtol)
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise AttnDeployError(f"precision: expected one of {list(TOLERANCES)}, "
                              f"got {precision!r}") from None


def _count_nonfinite(a: np.ndarray) -> tuple[int, int]:
    return int(np.isnan(a).sum()), int(np.isinf(a).sum())


def compare_arrays(name: str, out: np.ndarray, ref: np.ndarray, tol: float,
                   atol: float | None = None, allow_nonfinite: bool = False
                   ) -> OutputComparison:
    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        return OutputComparison(name, False, tolerance=tol,
                                reason=f"shape {out.shape} != reference {ref.shape}")
    if not np.issubdtype(ref.dtype, np.floating):
        bad = np.argwhere(out != ref)
        return OutputComparison(name, not len(bad), 0.0 if not len(bad) else 1.0,
                                0.0 if not len(bad) else float("nan"),
                                tuple(bad[0]) if len(bad) else (), tolerance=0.0,
                                reason="" if not len(bad) else f"{len(bad)} elements differ")
    o64, r64 = out.astype(np.float64), ref.astype(np.float64)
    if r64.size == 0:
        return OutputComparison(name, True, 0.0, 0.0, (), tolerance=tol)
    o_fin, r_fin = np.isfinite(o64), np.isfinite(r64)
    nonfinite = ""
    if not (o_fin.all() and r_fin.all()):
        (on, oi), (rn, ri) = _count_nonfinite(o64), _count_nonfinite(r64)
        nonfinite = (f"output {on} NaN, {oi} Inf; reference {rn} NaN, {ri} Inf "
                     f"(of {r64.size} elements)")
    if not r_fin.any():
        return OutputComparison(name, False, tolerance=tol, degenerate=True, nonfinite=nonfinite,
                                reason=f"degenerate: the reference has no finite element "
                                       f"({nonfinite})")
    if nonfinite and not allow_nonfinite:
        bad = ~o_fin | ~r_fin
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        return OutputComparison(name, False, float("nan"), float("nan"), idx, float(o64[idx]),
                                float(r64[idx]), tol, nonfinite=nonfinite,
                                reason=f"non-finite values: {nonfinite}; first at {idx}: "
                                       f"{o64[idx]:.6g} vs reference {r64[idx]:.6g}")
    if nonfinite and not (np.array_equal(o_fin, r_fin) and
                          np.array_equal(o64[~r_fin], r64[~r_fin], equal_nan=True)):
        return OutputComparison(name, False, tolerance=tol, nonfinite=nonfinite,
                                reason=f"non-finite values differ from the reference's "
                                       f"({nonfinite})")
    diff = np.where(r_fin, np.abs(o64 - r64), 0.0)
    flat = int(np.argmax(diff))
    idx = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    ref_norm = float(np.linalg.norm(np.where(r_fin, r64, 0.0)))
    err_norm = float(np.linalg.norm(diff))
    max_abs = float(diff.max())
    if ref_norm < _ZERO_NORM:
        return OutputComparison(name, False, float("inf") if err_norm else float("nan"),
                                max_abs, idx, float(o64[idx]), float(r64[idx]), tol,
                                degenerate=True, nonfinite=nonfinite,
                                reason="degenerate: the reference is all zeros, so any runtime "
                                       f"writing zeros would match it (max abs error "
                                       f"{max_abs:.2e})")
    rel = err_norm / ref_norm
    passed = rel <= tol or (atol is not None and max_abs <= atol)
    return OutputComparison(name, passed, rel, max_abs, idx, float(o64[idx]),
                            float(r64[idx]), tol, atol=atol, nonfinite=nonfinite)


def compare(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
            precision: str = "fp32", rtol: float | None = None,
            atol: float | None = None, allow_nonfinite: bool = False) -> Comparison:
    """Compare every reference output with the runner's output of the same name.
    ``allow_nonfinite``: NaN/Inf pass where both sides have the same ones (default: fail)."""
    tol = tolerance(precision, rtol)
    result = Comparison()
    for name, ref in reference.items():
        if name not in outputs:
            result.outputs.append(OutputComparison(name, False, tolerance=tol,
                                                   reason=f"missing; got {list(outputs)}"))
            continue
        result.outputs.append(compare_arrays(name, outputs[name], ref, tol, atol,
                                             allow_nonfinite))
    return result
