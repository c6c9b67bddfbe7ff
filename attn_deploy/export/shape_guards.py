"""Refuse an export that froze a size-dependent branch: read what torch.export recorded.

A model such as mmdet's FPN_CARAFE (``if up.shape[2] != x.shape[2]: up = up[..., :H, :W]``)
takes one side of the branch at the example size. Plain ``torch.export`` refuses it
("Constraints violated (H, W)"); the ONNX exporter instead records the branch's condition as a
deferred runtime assertion (``Eq(2*((H - 1)//2) + 2, H)``: H even), or applies torch.export's
suggested fix (``H = 2*_H``), or narrows the range of H, and drops the assertion from the ONNX
graph. The dims stay symbolic, so the saved file looks dynamic, but ONNX Runtime fails or gives
wrong numbers at sizes the example did not represent.

:func:`check_exported_dims` reads, after the export, for every declared dynamic dim:

- its symbolic size in the exported program: ``s`` (or ``m*s`` with a declared multiple ``m``);
  any other form means the exporter constrained it (``2*s``: a multiple of 2 nobody declared);
- its range (``ExportedProgram.range_constraints``) against the declared min and max;
- the shape environment's deferred runtime assertions over the input dims, evaluated at sizes
  drawn from the declared domain (bounds, multiples, sizes other than 1);

and raises :class:`AttnDeployError` naming the dims, the condition and the source line that
introduced it (from the ``torch.fx.experimental.symbolic_shapes`` guard log, captured during the
export by :class:`GuardLog`). When the condition holds for every multiple of some 2^k it says so
and suggests ``--multiple H=2^k,...``.

Two kinds of recorded conditions are not judged: assertions that a size is not 1 (the exporter
assumes sizes other than 0 and 1 by design; DESIGN.md asks for example sizes > 1) and guards of
torch's own kernel selection (``batch < 16`` in the convolution's fake implementation), which
choose a memory format, not the graph. The run at a second shape (``second_shape.py``) is the
empirical check behind these static ones.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import traceback
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from attn_deploy.errors import AttnDeployError

_SYMBOLIC_SHAPES_LOGGER = "torch.fx.experimental.symbolic_shapes"
_SYMBOL = re.compile(r"\bs\d+\b")
# common factors tried when suggesting a --multiple (mmdet pads detector inputs to 32 or 64)
_FACTORS = (2, 4, 8, 16, 32, 64)
_MAX_POINTS = 400


class GuardLog(logging.Handler):
    """Collects (condition, user source line) for every guard and runtime assertion the shape
    environment adds while active; the log records go nowhere else."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.entries: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if "[guard added]" not in str(record.msg) or len(args) < 3:
            return
        self.entries.append((str(args[1]), _user_location(args[2])))

    def __enter__(self) -> "GuardLog":
        log = logging.getLogger(_SYMBOLIC_SHAPES_LOGGER)
        self._saved = (log.level, log.propagate, log.handlers[:])
        log.handlers[:] = [self]
        log.setLevel(logging.INFO)
        log.propagate = False
        return self

    def __exit__(self, *exc) -> None:
        log = logging.getLogger(_SYMBOLIC_SHAPES_LOGGER)
        log.level, log.propagate, log.handlers[:] = self._saved

    def locations(self, symbols: set[str]) -> list[str]:
        """User source lines of the logged conditions over exactly ``symbols``."""
        seen: dict[str, None] = {}
        for cond, loc in self.entries:
            if loc and set(_SYMBOL.findall(cond)) == symbols:
                seen.setdefault(loc)
        return list(seen)


def _user_location(sloc) -> str:
    """'file.py:12 in forward: <code>' for a guard's location outside torch, else ''."""
    import torch

    frame = getattr(sloc, "framework_loc", None)
    if isinstance(frame, traceback.FrameSummary):
        if frame.filename.startswith(os.path.dirname(torch.__file__)):
            return ""
        line = (frame.line or "").strip()
        return f"{frame.filename}:{frame.lineno} in {frame.name}" + (f": {line}" if line else "")
    return ""


@dataclass(frozen=True)
class DeclaredDim:
    """A dynamic dim as the caller declared it: size = multiple * k, min <= size <= max."""

    symbol: str
    example: int
    multiple: int = 1
    min: int = 1
    max: int | None = None

    def sizes(self, factor: int = 1) -> list[int]:
        """Sizes to test a condition at: around the example, at the low end and (if bounded) the
        high end of the declared range; multiples of ``multiple * factor``, never 0 or 1."""
        m = self.multiple * factor
        lo = max(self.min, 2)
        lo = -(-lo // m) * m
        hi = self.max if self.max is not None else max(4 * self.example, lo + 64 * m)
        base = -(-self.example // m) * m
        picks = {base + i * m for i in range(-3, 4)} | {lo + i * m for i in range(4)}
        picks |= {2 * base + m, hi - hi % m, hi - hi % m - m}
        return sorted(s for s in picks if lo <= s <= hi)


def _placeholder_sizes(ep, n_inputs: int):
    """The fake tensors of the exported program's user inputs, in order."""
    names = list(ep.graph_signature.user_inputs)[:n_inputs]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    return [nodes[n].meta.get("val") if n in nodes else None for n in names]


def _is_not_one(expr) -> bool:
    """Conditions of the form size != 1 / 1 < size / size >= 2: the exporter's assumption that a
    dynamic size is not 1 (backed_size_oblivious), not a frozen branch."""
    import sympy

    if isinstance(expr, sympy.Ne):
        # size != 1, or size != a constant such as a declared max (a slice to the full length
        # assumed not to be a no-op): one excluded point, not a frozen branch (those record
        # Eq/Mod conditions, or Ne between two sizes)
        return expr.lhs.is_number or expr.rhs.is_number
    if isinstance(expr, (sympy.StrictLessThan, sympy.StrictGreaterThan)):
        small = expr.lhs if isinstance(expr, sympy.StrictLessThan) else expr.rhs
        return small == 1
    if isinstance(expr, (sympy.GreaterThan, sympy.LessThan)):
        small = expr.rhs if isinstance(expr, sympy.GreaterThan) else expr.lhs
        return small == 2
    return False


def _holds(expr, subs) -> bool | None:
    import sympy

    value = expr.xreplace(subs)
    if value in (sympy.true, True):
        return True
    if value in (sympy.false, False):
        return False
    return None  # not decidable from the sizes alone


def _points(syms, grids) -> list[tuple]:
    """Every combination of the symbols' test sizes (a deterministic subset when too many)."""
    combos = list(itertools.product(*(grids[s] for s in syms)))
    if len(combos) <= _MAX_POINTS:
        return combos
    step = len(combos) / _MAX_POINTS
    return [combos[int(i * step)] for i in range(_MAX_POINTS)]


def _violation(expr, syms, base: Mapping, grids) -> dict[str, int] | None:
    """The first sizes (symbol -> size) at which ``expr`` is false, or None."""
    import sympy

    for point in _points(syms, grids):
        subs = {base[s][0]: sympy.Integer(size // base[s][1]) for s, size in zip(syms, point)}
        if _holds(expr, subs) is False:
            return dict(zip(syms, point))
    return None


def check_exported_dims(program, input_names: Sequence[str],
                        dynamic_axes: Mapping[str, Mapping[int, str]],
                        declared: Mapping[str, DeclaredDim], log: GuardLog | None = None,
                        where: str = "the model",
                        runs_at: Callable[[dict[str, int]], bool] | None = None) -> None:
    """Raise AttnDeployError when the export constrained a declared dynamic dim (see the
    module docstring). ``program``: the ``torch.onnx.ONNXProgram`` of the export.

    ``runs_at(sizes)``: whether the model runs in eager at these sizes (symbol -> size, the
    others at the example's). A range the exporter narrowed is the model's own limit, not a
    frozen branch, when eager fails just outside it (a 3x3 convolution without padding needs
    H >= 3); without ``runs_at`` every narrowed range is refused."""
    import torch

    ep = getattr(program, "exported_program", None)
    if ep is None or not dynamic_axes:
        return
    vals = _placeholder_sizes(ep, len(input_names))
    base: dict[str, tuple] = {}     # user symbol -> (sympy base symbol, coefficient)
    problems: list[str] = []
    for name, val in zip(input_names, vals):
        if not isinstance(val, torch.Tensor):
            continue
        for axis, sym in dynamic_axes.get(name, {}).items():
            size = val.shape[axis]
            if not isinstance(size, torch.SymInt) or sym in base:
                continue  # a pinned dim is reported by the ONNX shape check
            expr = size.node.expr
            coeff, free = expr.as_coeff_Mul()
            d = declared[sym]
            if not free.is_Symbol or not coeff.is_Integer:
                problems.append(f"{sym} became {expr} in the exported program")
                continue
            base[sym] = (free, int(coeff))
            if int(coeff) != d.multiple:
                problems.append(
                    f"{sym} was constrained to multiples of {int(coeff)} (declared: "
                    f"{'any size' if d.multiple == 1 else f'multiples of {d.multiple}'}); "
                    f"declare it: --multiple {sym}={int(coeff)}")
    narrowed = _narrowed_ranges(ep, base, declared, runs_at)
    problems += list(narrowed.values())
    by_base = {b: s for s, (b, _) in base.items()}
    shape_env = next((s.node.shape_env for v in vals if isinstance(v, torch.Tensor)
                      for s in v.shape if isinstance(s, torch.SymInt)), None)
    asserts = [ra.expr for ras in (shape_env.deferred_runtime_asserts.values()
                                   if shape_env is not None else []) for ra in ras]
    grids = {s: declared[s].sizes() for s in base}
    violated = []
    for expr in dict.fromkeys(asserts):
        syms = [by_base.get(f) for f in expr.free_symbols]
        if not syms or None in syms or _is_not_one(expr):
            continue  # data-dependent (unbacked) symbols or the size-1 assumption
        syms.sort(key=list(base).index)
        bad = _violation(expr, syms, base, grids)
        if bad is not None:
            violated.append((expr, syms, bad))
    for expr, syms, bad in violated:
        at = ", ".join(f"{s}={v}" for s, v in bad.items())
        problems.append(f"the exported graph is only valid where {_readable(expr, base)} "
                        f"(false at {at})")
    if not problems:
        return
    lines = [f"{where} cannot be exported with the dynamic dims declared: a size-dependent "
             "branch was frozen at the example sizes, so the file would fail or give wrong "
             "numbers at other sizes:"] + [f"  - {p}" for p in problems]
    locs = []
    if log is not None:
        for expr, syms, _ in violated:
            locs += log.locations({str(f) for f in expr.free_symbols})
        for sym in narrowed:
            locs += log.locations({str(base[sym][0])})
    if locs:
        lines.append("  recorded at: " + "; ".join(dict.fromkeys(locs)))
    hint = _multiple_hint(violated, base, declared)
    if hint:
        lines.append(hint)
    else:
        lines.append("  Make the branch independent of the input size, or export with static "
                     "sizes for these dims.")
    raise AttnDeployError("\n".join(lines))


def _narrowed_ranges(ep, base, declared, runs_at) -> dict[str, str]:
    """{symbol: why} for the dims whose range the export narrowed below the declared one."""
    out = {}
    for sym, (b, coeff) in base.items():
        vr = ep.range_constraints.get(b)
        if vr is None:
            continue
        d = declared[sym]
        lo, hi = -(-d.min // coeff), (d.max // coeff if d.max is not None else None)
        got_lo, got_hi = _finite(vr.lower), _finite(vr.upper)
        # a lower bound of 2 is the exporter's own "sizes other than 1" assumption
        low = got_lo is not None and got_lo > max(lo, 2)
        high = got_hi is not None and (hi is None or got_hi < hi)
        outside = [k * coeff for k, cut in ((got_lo - 1 if low else 0, low),
                                            (got_hi + 1 if high else 0, high)) if cut]
        if not outside or (runs_at is not None and
                           not any(runs_at({sym: size}) for size in outside)):
            continue  # not narrowed, or the model itself cannot run outside the range
        shown = (f"{'' if got_lo is None else got_lo * coeff}.."
                 f"{'' if got_hi is None else got_hi * coeff}")
        out[sym] = (f"{sym} was limited to {shown} (declared {d.min}.."
                    f"{'' if d.max is None else d.max}), though PyTorch runs at {sym}="
                    f"{outside[0]}")
    return out


def _finite(bound) -> int | None:
    import sympy

    return int(bound) if isinstance(bound, sympy.Integer) else None  # int_oo is not Integer


def _readable(expr, base) -> str:
    """The condition with the caller's symbols in place of torch's (s53 -> H)."""
    import sympy

    return str(expr.xreplace({b: sympy.Symbol(s) / c if c != 1 else sympy.Symbol(s)
                              for s, (b, c) in base.items()}))


def _multiple_hint(violated, base, declared) -> str:
    """Suggest the smallest common multiple (2, 4, ..., 64) that makes every violated condition
    hold, when there is one."""
    if not violated:
        return ""
    syms = sorted({s for _, ss, _ in violated for s in ss}, key=list(base).index)
    for f in _FACTORS:
        grids = {s: declared[s].sizes(f if s in syms else 1) for s in base}
        if all(_violation(expr, ss, base, grids) is None for expr, ss, _ in violated):
            sizes = ",".join(f"{s}={declared[s].multiple * f}" for s in syms)
            return (f"  The condition holds when {', '.join(syms)} are multiples of "
                    f"{declared[syms[0]].multiple * f}: declare that, e.g. --multiple {sizes} "
                    "(Python: multiples={...}; a recipe: [export] multiples). Detectors built "
                    "with mmdet pad their inputs to 32 or 64, so --multiple "
                    f"{','.join(f'{s}=64' for s in syms)} also matches how they are served.")
    return ""
