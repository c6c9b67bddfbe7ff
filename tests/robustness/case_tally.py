"""Counting the outcomes of bad-input cases that each need a scratch folder (the Triton and
recipe tables), in the shape block_cases.counts gives: {category: {"tried": n, outcome: k}}."""
from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable


def tally(category: str, cases: Iterable, outcome: Callable[[object, Path], tuple[str, str]]
          ) -> dict[str, dict[str, int]]:
    """Run ``outcome(case, folder)`` for every case, each in a fresh empty folder."""
    counter = Counter()
    for case in cases:
        with tempfile.TemporaryDirectory() as root:
            counter["tried"] += 1
            counter[outcome(case, Path(root))[0]] += 1
    return {category: dict(counter)}
