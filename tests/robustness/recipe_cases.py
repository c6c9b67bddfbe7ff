"""Bad export recipes, as data: case -> the fragment the AttnDeployError must contain.

Each case is a valid base recipe with one key set to a bad value (or a whole-file defect: not
UTF-8, a ``[dtypes]`` entry for no input, a text file as checkpoint). :func:`outcome` writes it,
loads it with ``load_recipe`` (and, for a checkpoint case, reads the checkpoint as ``export
--recipe`` does) and says what happened; :func:`counts` tallies every case for the README's
reliability table. Loading never imports the factory, so the cases are fast.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from attn_deploy.deploy.recipe import load_recipe
from attn_deploy.deploy.checkpoint import read_checkpoint
from attn_deploy.errors import AttnDeployError
from case_tally import tally  # beside this file, on sys.path as block_cases is

CATEGORY = "recipe (export --recipe)"
CLEAR, UNNAMED, TRACEBACK, ACCEPTED = (
    "clear error", "error without the name", "traceback", "accepted")

BASE = """\
[model]
factory = "attn_deploy.deploy.examples:ccnet_small"
kwargs = { num_classes = 5 }
deployable = true

[inputs]
image = ["N", 3, "H", "W"]

[dtypes]
image = "float32"

[export]
output = "build/m.onnx"
outputs = ["logits"]
opset = 18
flavor = "default"
dims = { N = 2, H = 64, W = 64 }
multiples = { H = 8, W = 8 }

[validate]
shapes = [{ N = 2, H = 64, W = 64 }, { N = 3, H = 40, W = 72 }]
runtimes = ["ort-cpu"]
precision = "fp32"
tolerances = { fp32 = 1e-5 }
seed = 0

[tensorrt]
engine = "build/m.engine"
precision = "fp16"
min = { N = 1, H = 32, W = 32 }
"""


@dataclass(frozen=True)
class Case:
    name: str
    expect: str              # fragment of the message (the key, or the file's problem)
    table: str = ""          # set ``key = value`` in [table] (replacing the base line)
    key: str = ""
    value: str = ""          # TOML text
    raw: bytes | None = None  # the whole file instead
    checkpoint_text: str | None = None  # write this text file and use it as the checkpoint


CASES = [
    Case("deployable a string", "deployable", "model", "deployable", '"false"'),
    Case("deployable an int", "deployable", "model", "deployable", "0"),
    Case("kwargs a list", "kwargs", "model", "kwargs", "[1, 2]"),
    Case("checkpoint an int", "checkpoint", "model", "checkpoint", "3"),
    Case("factory missing", "factory", "model", "factory", None),
    Case("opset a float", "opset", "export", "opset", "18.9"),
    Case("opset a string", "opset", "export", "opset", '"18"'),
    Case("opset a bool", "opset", "export", "opset", "true"),
    Case("flavor unknown", "flavor", "export", "flavor", '"onnx"'),
    Case("outputs a string", "outputs", "export", "outputs", '"logits"'),
    Case("output empty", "output", "export", "output", '""'),
    Case("multiples H = 0", "multiples", "export", "multiples", "{ H = 0 }"),
    Case("multiples H = -8", "multiples", "export", "multiples", "{ H = -8, W = 8 }"),
    Case("multiples a float", "multiples", "export", "multiples", "{ H = 8.0 }"),
    Case("dims H = 0", "dims", "export", "dims", "{ N = 2, H = 0, W = 64 }"),
    Case("dims not a multiple", "dims", "export", "dims", "{ N = 2, H = 60, W = 64 }"),
    Case("dims an unknown symbol", "dims", "export", "dims", "{ N = 2, H = 64, W = 64, C = 3 }"),
    Case("min_dims negative", "min_dims", "export", "min_dims", "{ H = -1 }"),
    Case("precision fp64", "precision", "validate", "precision", '"fp64"'),
    Case("precision int", "precision", "validate", "precision", "32"),
    Case("seed a string", "seed", "validate", "seed", '"abc"'),
    Case("seed a float", "seed", "validate", "seed", "1.5"),
    Case("seed negative", "seed", "validate", "seed", "-1"),
    Case("runtimes unknown", "runtimes", "validate", "runtimes", '["ort-gpu"]'),
    Case("runtimes a string", "runtimes", "validate", "runtimes", '"ort-cpu"'),
    Case("tolerances a string", "tolerances", "validate", "tolerances", '{ fp32 = "1e-5" }'),
    Case("tolerances negative", "tolerances", "validate", "tolerances", "{ fp32 = -1.0 }"),
    Case("tolerances unknown precision", "tolerances", "validate", "tolerances",
         "{ fp64 = 1e-9 }"),
    Case("one shape only", "shapes", "validate", "shapes", "[{ N = 2, H = 64, W = 64 }]"),
    Case("shape H = 0", "shapes", "validate", "shapes",
         "[{ N = 2, H = 64, W = 64 }, { N = 2, H = 0, W = 64 }]"),
    Case("engine precision int8", "precision", "tensorrt", "precision", '"int8"'),
    Case("engine profile a string", "min", "tensorrt", "min", '"small"'),
    Case("engine missing", "engine", "tensorrt", "engine", None),
    Case("input template a string", "inputs.image", "inputs", "image", '"N,3,H,W"'),
    Case("input dim 0", "inputs.image", "inputs", "image", '["N", 0, "H", "W"]'),
    Case("dtype unknown", "dtypes.image", "dtypes", "image", '"float128"'),
    Case("dtypes for no input", "[dtypes]", "dtypes", "mask", '"bool"'),
    Case("unknown key", "unknown key", "export", "opsett", "18"),
    Case("not UTF-8", "not UTF-8", raw=b"[model]\nfactory = \"m:f\xff\xfe\"\n"),
    Case("not TOML", "not valid TOML", raw=b"[model\nfactory = 1\n"),
    Case("empty file", "tables must be", raw=b""),
    Case("text file as checkpoint", "not a readable torch.save file",
         checkpoint_text="root:x:0:0:root:/root:/bin/bash\n"),
]


def recipe_text(case: Case, checkpoint: Path | None = None) -> str:
    """The base recipe with ``case``'s key set (or removed, when its value is None)."""
    text = BASE
    if checkpoint is not None:
        text = text.replace("deployable = true\n",
                            f"deployable = true\ncheckpoint = {str(checkpoint)!r}\n")
    if not case.table:
        return text
    header = f"[{case.table}]\n"
    start = text.index(header) + len(header)
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end + 1
    body = re.sub(rf"(?m)^{re.escape(case.key)} = .*\n", "", text[start:end])
    if case.value is not None:
        body = f"{case.key} = {case.value}\n" + body
    return text[:start] + body + text[end:]


def outcome(case: Case, root: Path) -> tuple[str, str]:
    """(outcome, message) of one case, written into the folder ``root``."""
    path = root / "r.toml"
    checkpoint = None
    if case.checkpoint_text is not None:
        checkpoint = root / "weights.pt"
        checkpoint.write_text(case.checkpoint_text)
    path.write_bytes(case.raw if case.raw is not None
                     else recipe_text(case, checkpoint).encode("utf-8"))
    try:
        recipe = load_recipe(path)
        if recipe.checkpoint is not None:
            read_checkpoint(recipe.checkpoint)
    except AttnDeployError as exc:
        message = str(exc)
        ok = case.expect in message and "\n" not in message
        return (CLEAR if ok else UNNAMED), message
    except Exception as exc:  # what a user would see as a traceback
        return TRACEBACK, f"{type(exc).__name__}: {exc}"
    return ACCEPTED, ""


def counts(cases: list[Case] | None = None) -> dict[str, dict[str, int]]:
    """{category: {"tried": n, outcome: count, ...}}, measured by running every case."""
    return tally(CATEGORY, CASES if cases is None else cases, outcome)
