"""The README's "Reliability" table, measured by running every bad-input case of this folder.

Each case module here that defines ``counts() -> {category: {"tried": n, outcome: count}}``
contributes its rows. Outcomes: "clear error" (a one-line error naming the input, what was
expected and what was seen), "right result", "error without the name", "traceback",
"accepted" (no error where one was due). ``test_reliability_table.py`` checks that the README
shows exactly what the cases measure now; to rewrite it:

    .venv/bin/python tests/robustness/reliability_table.py --write-readme
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"
OUTCOMES = ("clear error", "right result", "error without the name", "traceback", "accepted")


def case_modules() -> list[str]:
    """Modules of this folder that measure their cases (``counts()``)."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("test_") or path.stem in ("reliability_table", "conftest"):
            continue
        if "\ndef counts(" in path.read_text():
            names.append(path.stem)
    return names


def measure() -> dict[str, dict[str, int]]:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    rows: dict[str, dict[str, int]] = {}
    for name in case_modules():
        rows.update(importlib.import_module(name).counts())
    return rows


def table(rows: dict[str, dict[str, int]]) -> str:
    lines = ["| inputs | tried | " + " | ".join(OUTCOMES) + " |",
             "|---|---:|" + "---:|" * len(OUTCOMES)]
    for category in sorted(rows):
        c = rows[category]
        unknown = set(c) - {"tried", *OUTCOMES}
        if unknown:
            raise ValueError(f"{category}: unknown outcomes {sorted(unknown)}")
        lines.append(f"| {category} | {c['tried']:,} | "
                     + " | ".join(f"{c.get(o, 0):,}" for o in OUTCOMES) + " |")
    total = {o: sum(c.get(o, 0) for c in rows.values()) for o in ("tried", *OUTCOMES)}
    lines.append(f"| **all** | {total['tried']:,} | "
                 + " | ".join(f"{total[o]:,}" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def readme_table() -> str:
    text = README.read_text()
    if START not in text or END not in text:
        return ""
    return text[text.index(START) + len(START):text.index(END)].strip()


def write_readme(generated: str) -> None:
    text = README.read_text()
    README.write_text(text[:text.index(START) + len(START)] + "\n" + generated + "\n"
                      + text[text.index(END):])


if __name__ == "__main__":
    generated = table(measure())
    print(generated)
    if "--write-readme" in sys.argv:
        write_readme(generated)
