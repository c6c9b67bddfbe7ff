"""Bad inputs to ``write_triton_repo`` (``attn-deploy triton-repo``), as data: case -> the
fragment the AttnDeployError must contain.

Each case writes a small ONNX model (and a plan file where it needs one) into a scratch folder,
calls write_triton_repo on an empty repository, and records the outcome: a clear error (the
fragment is in the message and the repository is still empty), an error with another message,
another exception type (a traceback for the user), no error at all, or an error that left
files behind. :func:`counts` tallies them for the README's reliability table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from attn_deploy.deploy.triton_repo import write_triton_repo
from attn_deploy.errors import AttnDeployError
from case_tally import tally  # beside this file, on sys.path as block_cases is

CATEGORY = "Triton repository (triton-repo: names, model, plan, batching)"
CLEAR, UNNAMED, TRACEBACK, ACCEPTED = (
    "clear error", "error without the name", "traceback", "accepted")

INJECTION = 'x"\n  backend: "python"\n#'   # closes the name string, adds a field


@dataclass(frozen=True)
class Case:
    name: str
    expect: str                                   # fragment of the AttnDeployError message
    input_name: str = "x"
    output_name: str = "y"
    opset: int = 18
    dims: tuple = ("N", 3)
    graph: str = "relu"                           # "relu", "mixed_add" (ORT refuses), "custom"
    plan: bytes | str | None = None               # plan bytes, or "onnx": the ONNX file itself
    kwargs: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("input name injects backend", "characters", input_name=INJECTION),
    Case("output name injects backend", "characters", output_name=INJECTION),
    Case("input name with a quote", "characters", input_name='x"'),
    Case("input name with a newline", "characters", input_name="x\ny"),
    Case("input name with a backslash", "characters", input_name="x\\"),
    Case("input name with a control character", "characters", input_name="x\x01"),
    Case("output name with a space", "characters", output_name="y z"),
    Case("model name with a quote", "model name", kwargs={"name": 'm"'}),
    Case("model name injects a line", "model name", kwargs={"name": 'm\nbackend: "python"'}),
    Case("model name hidden", "model name", kwargs={"name": ".m"}),
    Case("model name a path", "model name", kwargs={"name": "../m"}),
    Case("plugin path injects a line", "plugin library path", graph="custom",
         plan=b"engine", kwargs={"plugin_library": "/lib.so\nbackend: \"python\""}),
    Case("opset 99", "opset", opset=99),
    Case("negative dim", "-5", dims=("N", -5)),
    Case("graph ONNX Runtime cannot load", "ONNX Runtime cannot load it", graph="mixed_add"),
    Case("tensorrt flavor on ONNX Runtime", "ONNX Runtime cannot run it", graph="custom"),
    Case("empty plan", "is empty", graph="custom", plan=b""),
    Case("ONNX file as plan", "is an ONNX file", graph="custom", plan="onnx"),
    Case("missing plan", "does not exist", graph="custom", plan="missing"),
    Case("negative max_batch_size", "max_batch_size", kwargs={"max_batch_size": -1}),
    Case("max_batch_size on a static axis 0", "dynamic axis 0", dims=(2, 3),
         kwargs={"max_batch_size": 4}),
    Case("version 0", "version", kwargs={"version": 0}),
    Case("version a string", "version", kwargs={"version": "1"}),
]


def _model(case: Case) -> onnx.ModelProto:
    x = helper.make_tensor_value_info(case.input_name, TensorProto.FLOAT, list(case.dims))
    y = helper.make_tensor_value_info(case.output_name, TensorProto.FLOAT, list(case.dims))
    opsets = [helper.make_opsetid("", case.opset)]
    inputs = [x]
    if case.graph == "relu":
        nodes = [helper.make_node("Relu", [case.input_name], [case.output_name])]
    elif case.graph == "mixed_add":  # float + int64: valid protobuf, refused by ORT's typing
        inputs.append(helper.make_tensor_value_info("i", TensorProto.INT64, list(case.dims)))
        nodes = [helper.make_node("Add", [case.input_name, "i"], [case.output_name])]
    else:  # an attn_deploy node without its local function: the tensorrt export flavor
        nodes = [helper.make_node("CrissCrossAttention", [case.input_name] * 3,
                                  [case.output_name], domain="attn_deploy")]
        opsets.append(helper.make_opsetid("attn_deploy", 1))
    graph = helper.make_graph(nodes, "g", inputs, [y])
    return helper.make_model(graph, opset_imports=opsets)


def outcome(case: Case, root: Path) -> tuple[str, str]:
    """(outcome, message) of one case, run in the empty folder ``root``."""
    path = root / "m.onnx"
    onnx.save(_model(case), path)
    kwargs = dict(case.kwargs)
    if case.plan == "onnx":
        kwargs["plan"] = path
    elif case.plan == "missing":
        kwargs["plan"] = root / "missing.engine"
    elif case.plan is not None:
        (root / "m.engine").write_bytes(case.plan)
        kwargs["plan"] = root / "m.engine"
    repo = root / "repo"
    repo.mkdir()
    try:
        write_triton_repo(path, repo, **kwargs)
    except AttnDeployError as exc:
        message = str(exc)
        clean = not any(repo.iterdir())  # nothing written before the error
        return (CLEAR if clean and case.expect in message and "\n" not in message.strip()
                else UNNAMED), message
    except Exception as exc:  # what a user would see as a traceback
        return TRACEBACK, f"{type(exc).__name__}: {exc}"
    return ACCEPTED, ""


def counts(cases: list[Case] | None = None) -> dict[str, dict[str, int]]:
    """{category: {"tried": n, outcome: count, ...}}, measured by running every case."""
    return tally(CATEGORY, CASES if cases is None else cases, outcome)
