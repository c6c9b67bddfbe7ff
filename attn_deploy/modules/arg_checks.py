"""Constructor argument checks shared by every block: one vocabulary, one message style.

Each function takes the argument's name and value, returns the value in its canonical type
(``int``, ``float``, ``bool``, ``tuple``) and raises :class:`AttnDeployError` naming the
argument, what was expected and what was seen. Why strict types: a block's config becomes
its registry spec, and a spec turns every string in a shape template into a dim symbol; a
``channels="64"`` that slipped through would export a model with a dynamic axis named "64".
So a bool is not an int (``True`` is not a channel count), a float is not an int (``64.0``
from a config file is refused, not truncated), and strings are never numbers.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from attn_deploy.errors import AttnDeployError


def _seen(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_arg(name: str, value: Any, *, min: int = 1, max: int | None = None,
            odd: bool = False) -> int:
    """``value`` as an int in [min, max] (odd if asked); bools, floats and strings refused."""
    if not _is_int(value) or value < min or (max is not None and value > max) \
            or (odd and value % 2 == 0):
        bound = f">= {min}" + ("" if max is None else f" and <= {max}")
        raise AttnDeployError(f"{name}: expected {'an odd' if odd else 'an'} int {bound}, "
                              f"got {_seen(value)}")
    return int(value)


def optional_int_arg(name: str, value: Any, *, min: int = 1, odd: bool = False) -> int | None:
    """None (the block picks a default), or an int as :func:`int_arg` checks it."""
    if value is None:
        return None
    if not _is_int(value) or value < min or (odd and value % 2 == 0):
        raise AttnDeployError(f"{name}: expected None or {'an odd' if odd else 'an'} int "
                              f">= {min}, got {_seen(value)}")
    return int(value)


def float_arg(name: str, value: Any, *, min: float | None = None, max: float | None = None,
              min_open: bool = False, max_open: bool = False) -> float:
    """``value`` as a finite float within the bounds (open or closed); bools and strings
    refused, ints accepted."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and math.isfinite(value)
    if ok and min is not None:
        ok = value > min if min_open else value >= min
    if ok and max is not None:
        ok = value < max if max_open else value <= max
    if not ok:
        lo = "" if min is None else f"{'(' if min_open else '['}{min}"
        hi = "" if max is None else f"{max}{')' if max_open else ']'}"
        rng = f" in {lo or '(-inf'}, {hi or 'inf)'}" if lo or hi else ""
        raise AttnDeployError(f"{name}: expected a finite number{rng}, got {_seen(value)}")
    return float(value)


def ratio_arg(name: str, value: Any) -> float:
    """A reduction ratio in (0, 1] (``channels * ratio`` is a width)."""
    return float_arg(name, value, min=0, max=1, min_open=True)


def rate_arg(name: str, value: Any) -> float:
    """A dropout probability in [0, 1)."""
    return float_arg(name, value, min=0, max=1, max_open=True)


def bool_arg(name: str, value: Any) -> bool:
    """``value`` if it is a bool; "false" or 0 are refused (a string "false" is truthy)."""
    if not isinstance(value, bool):
        raise AttnDeployError(f"{name}: expected True or False, got {_seen(value)}")
    return value


def choice_arg(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices`` (exact strings)."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise AttnDeployError(f"{name}: expected one of {choices}, got {_seen(value)}")
    return value


def int_tuple_arg(name: str, value: Any, *, min: int = 1, length: int | None = None
                  ) -> tuple[int, ...]:
    """A non-empty tuple (or list) of ints >= ``min`` (of ``length`` items if given)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if not items or any(not _is_int(v) or v < min for v in items) \
            or (length is not None and len(items) != length):
        what = f"{length} ints" if length is not None else "a non-empty tuple of ints"
        raise AttnDeployError(f"{name}: expected {what} >= {min}, got {_seen(value)}")
    return tuple(int(v) for v in items)


def str_tuple_arg(name: str, value: Any) -> tuple[str, ...]:
    """A non-empty tuple (or list) of strings."""
    items = tuple(value) if isinstance(value, (tuple, list)) else None
    if not items or any(not isinstance(v, str) for v in items):
        raise AttnDeployError(f"{name}: expected a non-empty tuple of strings, got "
                              f"{_seen(value)}")
    return items


def divisor_arg(name: str, value: int, of: str, total: int) -> int:
    """``value`` (already an int >= 1) if it divides ``total`` (the argument named ``of``)."""
    if total % value:
        raise AttnDeployError(f"{name}: expected a divisor of {of} = {total}, got {value}")
    return value
