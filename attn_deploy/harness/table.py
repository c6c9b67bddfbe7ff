"""The parity table ``attn-deploy validate`` prints, as text: one row per runtime and shape
(status, relative L2 error, max abs error), and under each row that did not pass the reason or
the failing outputs with their worst element. ``attn_deploy.testing`` raises it as the message
of its AssertionError, and the JUnit XML carries it, so all three read the same.
"""
from __future__ import annotations

HEADER = f"{'runtime':<16} {'shapes':<44} {'status':<12} {'rel L2':>9} {'max abs':>9}"


def format_row(r) -> list[str]:
    """The table lines of one :class:`~attn_deploy.harness.validate.RunResult`."""
    c = r.comparison
    # a failed Comparison is falsy: test for None, or failures would lose their numbers
    rel = f"{c.rel_l2:.2e}" if c is not None else "-"
    mx = f"{c.max_abs:.2e}" if c is not None else "-"
    lines = [f"{r.runtime:<16} {r.shapes[:44]:<44} {r.status:<12} {rel:>9} {mx:>9}"]
    if r.status != "pass" and c is not None:
        # the failing outputs, worst element included; passing outputs add nothing here
        lines += [f"    {str(o)[:200]}" for o in c.failures()]
    elif r.status != "pass" and r.message:
        lines.append(f"    {r.message.splitlines()[0][:200]}")
    return lines


def format_validation(v, rows=None) -> str:
    """The table of validation ``v`` (all its results, or only ``rows``); an int8 validation
    (accuracy results with SQNR) gets SQNR and cosine columns."""
    rows = v.results if rows is None else rows
    int8 = any(hasattr(r.comparison, "sqnr_db") for r in rows)
    lines = [HEADER + (f" {'SQNR dB':>8} {'cosine':>8}" if int8 else "")]
    for r in rows:
        row = format_row(r)
        if int8:
            c = r.comparison
            row[0] += (f" {c.sqnr_db:>8.1f} {c.cosine:>8.5f}" if hasattr(c, "sqnr_db")
                       else f" {'-':>8} {'-':>8}")
        lines += row
    return "\n".join(lines)
