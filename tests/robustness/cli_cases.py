"""Mistakes on the user's side of the command line, as data: case -> the fragment the one-line
``attn-deploy: error:`` must contain (exit 2).

A case writes the user's files (a model module, a text "checkpoint", a file where a folder is
meant) into a scratch folder, puts that folder on ``sys.path`` as PYTHONPATH would, and runs
``attn_deploy.cli.main``. Outcomes: a clear error (exit 2, one stderr line starting with
``attn-deploy: error:`` that contains the fragment), an error with another message, an
exception escaping main (a traceback), or exit 0. :func:`counts` tallies them for the README.
"""
from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from attn_deploy.cli import main
from case_tally import tally  # beside this file, on sys.path as block_cases is

CATEGORY = "CLI mistakes (export --model/--recipe, report, bench, build-engine)"
CLEAR, UNNAMED, TRACEBACK, ACCEPTED = (
    "clear error", "error without the name", "traceback", "accepted")

_NET = """
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(5, 2)
    def forward(self, x):
        return self.fc(x)
def good():
    return Net()
"""


@dataclass(frozen=True)
class Case:
    name: str
    expect: str
    argv: tuple[str, ...]                  # "{root}" is replaced by the scratch folder
    files: dict[str, str] = field(default_factory=dict)


def _export(module: str, factory: str = "make", *extra: str) -> tuple[str, ...]:
    return ("export", "--model", f"{module}:{factory}", "--input", "x:2x3", "-o",
            "{root}/out.onnx", "--no-validate", *extra)


CASES = [
    Case("factory raises ValueError", "raised ValueError: bad width",
         _export("cm_raise"), {"cm_raise.py": "def make():\n    raise ValueError('bad width')\n"}),
    Case("factory raises KeyError", "raised KeyError",
         _export("cm_key"), {"cm_key.py": "def make():\n    return {}['backbone']\n"}),
    Case("factory raises RuntimeError", "raised RuntimeError: no CUDA",
         _export("cm_rt"), {"cm_rt.py": "def make():\n    raise RuntimeError('no CUDA')\n"}),
    Case("factory wrong kwargs", "raised TypeError",
         _export("cm_kw", "make", "--kwargs", '{"depth": 3}'),
         {"cm_kw.py": "def make():\n    return None\n"}),
    Case("syntax error in the module", "has a syntax error",
         _export("cm_syntax"), {"cm_syntax.py": "def make(:\n    pass\n"}),
    Case("relative import in the module", "relative import",
         _export("cm_rel"), {"cm_rel.py": "from .layers import Block\ndef make():\n    pass\n"}),
    Case("module raises at import", "importing module 'cm_top' raised ZeroDivisionError",
         _export("cm_top"), {"cm_top.py": "x = 1 / 0\n"}),
    Case("module missing", "cannot import module", _export("cm_missing_module")),
    Case("factory missing", "has no attribute", _export("cm_attr", "nope"),
         {"cm_attr.py": "def make():\n    pass\n"}),
    Case("factory returns no module", "nn.Module", _export("cm_none"),
         {"cm_none.py": "def make():\n    return 3\n"}),
    Case("forward fails on the example", "forward failed on the example input(s) of shape (2, 3)",
         _export("cm_fwd", "good"), {"cm_fwd.py": _NET}),
    Case("text file as checkpoint", "not a readable torch.save file",
         _export("cm_ckpt", "good", "--checkpoint", "{root}/weights.pt"),
         {"cm_ckpt.py": _NET, "weights.pt": "root:x:0:0:root:/root:/bin/bash\n"}),
    Case("missing checkpoint", "does not exist",
         _export("cm_ckpt2", "good", "--checkpoint", "{root}/none.pt"), {"cm_ckpt2.py": _NET}),
    Case("recipe factory raises", "raised ValueError: bad width",
         ("export", "--recipe", "{root}/r.toml", "--no-validate"),
         {"cm_recipe.py": "def make():\n    raise ValueError('bad width')\n",
          "r.toml": '[model]\nfactory = "cm_recipe:make"\n[inputs]\nx = ["N", 3]\n'
                    '[export]\noutput = "o.onnx"\ndims = { N = 2 }\n'
                    '[validate]\nshapes = [{ N = 2 }, { N = 3 }]\n'}),
    Case("report --out is a file", "report --out", ("report", "--keys", "se", "--out", "{root}/taken"),
         {"taken": "a file\n"}),
    Case("bench --out is a file", "bench --out", ("bench", "se", "--out", "{root}/taken"),
         {"taken": "a file\n"}),
    Case("build-engine --cache-dir is a file", "build-engine --cache-dir",
         ("build-engine", "{root}/m.onnx", "--cache-dir", "{root}/taken"),
         {"taken": "a file\n", "m.onnx": ""}),
]


def run(case: Case, root: Path, debug: bool = False) -> tuple[int | None, str, str]:
    """(exit code or None if an exception escaped, stderr, escaped exception text)."""
    for rel, text in case.files.items():
        (root / rel).write_text(text)
    argv = (["--debug"] if debug else []) + [a.replace("{root}", str(root)) for a in case.argv]
    modules = [Path(rel).stem for rel in case.files if rel.endswith(".py")]
    err, out = io.StringIO(), io.StringIO()
    sys.path.insert(0, str(root))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
        return code, err.getvalue(), ""
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code or 0), err.getvalue(), ""
    except Exception as exc:
        return None, err.getvalue(), f"{type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(str(root))
        for name in modules:
            sys.modules.pop(name, None)


def outcome(case: Case, root: Path) -> tuple[str, str]:
    """(outcome, stderr or the escaped exception) of one case."""
    code, err, escaped = run(case, root)
    if code is None:
        return TRACEBACK, escaped
    if code == 0:
        return ACCEPTED, err
    lines = [line for line in err.splitlines() if line.startswith("attn-deploy: error:")]
    clear = code == 2 and len(lines) == 1 and case.expect in lines[0] and \
        "Traceback" not in err
    return (CLEAR if clear else UNNAMED), err


def counts(cases: list[Case] | None = None) -> dict[str, dict[str, int]]:
    """{category: {"tried": n, outcome: count, ...}}, measured by running every case."""
    return tally(CATEGORY, CASES if cases is None else cases, outcome)
