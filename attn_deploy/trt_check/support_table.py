"""TensorRT's ONNX operator support, as onnx-tensorrt publishes it, encoded as data.

The table ``attn_deploy/data/tensorrt_onnx_support.json`` holds, per TensorRT version, the opset
range, the data types and, per operator, whether the parser supports it, the types it lists and
its restrictions (the doc's text, plus the checks below where the text is checkable from the ONNX
file alone). It is generated from onnx-tensorrt's ``docs/operators.md``::

    python -m attn_deploy.trt_check.support_table operators.md --version 11.1 \\
        --source "onnx/onnx-tensorrt@7c51a63 docs/operators.md"

Each check is tied to the restriction sentence it encodes (``RESTRICTION_CHECKS``): a check is
attached only when that version's doc states the sentence, so the table never claims more than
the doc. Sentences without a check are kept as ``unchecked`` notes.
"""
from __future__ import annotations

import argparse
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

TABLE_RESOURCE = "tensorrt_onnx_support.json"
SCHEMA = 1

# The doc's spelling slips, corrected when read (recorded under "errata" in the table), and the
# long type names of its data-type sentence, written the way its table writes them.
_TYPE_ERRATA = {"INF64": "INT64"}
_TYPE_NAMES = {"FLOAT32": "FP32", "FLOAT16": "FP16", "BFLOAT16": "BF16"}

_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
           "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")

# (op, fragment of the restriction text) -> checks. Check kinds (evaluated by node_rules.py):
#   input_constant    input `input` (if given) must be an initializer or a Constant's output
#   input_false       input `input` (if given) must be a constant that is false
#   input_zero        input `input` (if given and constant) must be all zeros
#   input_below       input `input` (if constant) must be < `limit`
#   input_rank        input `input` must have rank in `ranks` (when shape inference knows it)
#   input_static      input `input` must have static dims (all, or `axis_attr`'s)
#   input_type        input `input` must have element type in `types`
#   input_absent      inputs `inputs` must be absent (empty names)
#   attr_in           attribute `attr` (default `default`) must be in `values`
#   attr_absent       attributes `attrs` must not be set
#   attr_all_ones     attribute `attr` must be empty or all ones
#   spatial_rank      len(kernel_shape) (pooling) or rank-2 of input 0 must be in `ranks`
#   pads_symmetric    `pads` begin == end per axis
#   outputs_unused    outputs `outputs` must be absent or unused
#   same_activations  bidirectional RNN/GRU/LSTM: both directions use the same activations
RESTRICTION_CHECKS: dict[str, list[tuple[str, list[dict]]]] = {
    **{op: [("`axes` must be an initializer",
             [{"kind": "input_constant", "input": 1, "what": "axes"}])] for op in _REDUCE},
    "Slice": [("`axes` must be an initializer",
               [{"kind": "input_constant", "input": 3, "what": "axes"}])],
    "Squeeze": [("`axes` must be", [{"kind": "input_constant", "input": 1, "what": "axes"}])],
    "Unsqueeze": [("`axes` must be", [{"kind": "input_constant", "input": 1, "what": "axes"}])],
    "Pad": [("`axes` must be an initializer",
             [{"kind": "input_constant", "input": 3, "what": "axes"}])],
    "CumSum": [("`axis` must be", [{"kind": "input_constant", "input": 1, "what": "axis"}])],
    "OneHot": [("`depth` must be", [{"kind": "input_constant", "input": 1, "what": "depth"}])],
    "Dropout": [("must be an initializer and evaluate to False",
                 [{"kind": "input_false", "input": 2, "what": "training_mode"}])],
    "TopK": [("`sorted` must be 1", [{"kind": "attr_in", "attr": "sorted", "values": [1],
                                       "default": 1}]),
             ("less than 3840", [{"kind": "input_below", "input": 1, "limit": 3840,
                                  "what": "K"}])],
    "DequantizeLinear": [("`x_zero_point` must be zero",
                          [{"kind": "input_zero", "input": 2, "what": "x_zero_point"}])],
    "QuantizeLinear": [("`y_zero_point` must be 0",
                        [{"kind": "input_zero", "input": 2, "what": "y_zero_point"}])],
    "ScatterND": [("`reduction`", [{"kind": "attr_in", "attr": "reduction", "values": ["none"],
                                     "default": "none"}])],
    "Constant": [("attributes are unsupported",
                  [{"kind": "attr_absent",
                    "attrs": ["sparse_value", "value_string", "value_strings"]}])],
    "LayerNormalization": [("Only the first output", [{"kind": "outputs_unused",
                                                        "outputs": [1, 2]}])],
    "MaxPool": [("2D or 3D", [{"kind": "spatial_rank", "ranks": [2, 3]}]),
                ("`Indices` output tensor unsupported",
                 [{"kind": "outputs_unused", "outputs": [1]}]),
                ("`dilations` must be empty or all ones",
                 [{"kind": "attr_all_ones", "attr": "dilations"}])],
    "AveragePool": [("2D or 3D", [{"kind": "spatial_rank", "ranks": [2, 3]}]),
                    ("`dilations` must be empty or all ones",
                     [{"kind": "attr_all_ones", "attr": "dilations"}])],
    "LpPool": [("`dilations` must be empty or all ones",
                [{"kind": "attr_all_ones", "attr": "dilations"}])],
    "DeformConv": [("1D or 2D spatial", [{"kind": "spatial_rank", "ranks": [1, 2]}]),
                   ("`pads` for the beginning and end", [{"kind": "pads_symmetric"}])],
    "GridSample": [("must be 4D", [{"kind": "input_rank", "input": 0, "ranks": [4]}])],
    "EyeLike": [("static dimensions", [{"kind": "input_static", "input": 0}])],
    "Hardmax": [("`axis` dimension of input must be a build-time constant",
                 [{"kind": "input_static", "input": 0, "axis_attr": "axis",
                   "axis_default": -1}])],
    "LSTM": [("activation functions must be the same",
              [{"kind": "same_activations", "per_direction": 3}]),
             ("`input_forget` attribute must be 0",
              [{"kind": "attr_in", "attr": "input_forget", "values": [0], "default": 0}]),
             ("`layout` attribute must be 0",
              [{"kind": "attr_in", "attr": "layout", "values": [0], "default": 0}])],
    "GRU": [("activation functions must be the same",
             [{"kind": "same_activations", "per_direction": 2}])],
    "RNN": [("activation functions must be the same",
             [{"kind": "same_activations", "per_direction": 1}])],
    "Resize": [
        ("Supported resize transformation modes",
         [{"kind": "attr_in", "attr": "coordinate_transformation_mode", "default": "half_pixel",
           "values": ["half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                      "align_corners"]}]),
        ("Supported resize modes", [{"kind": "attr_in", "attr": "mode", "default": "nearest",
                                     "values": ["nearest", "linear"]}]),
        ("Supported nearest modes",
         [{"kind": "attr_in", "attr": "nearest_mode", "default": "round_prefer_floor",
           "values": ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]}]),
        ("Supported aspect ratio policy",
         [{"kind": "attr_in", "attr": "keep_aspect_ratio_policy", "default": "stretch",
           "values": ["stretch"]}]),
        ("Antialiasing is not supported", [{"kind": "attr_in", "attr": "antialias",
                                             "default": 0, "values": [0]}]),
    ],
    "STFT": [("`frame_step` and `window` must be an initializer",
              [{"kind": "input_constant", "input": 1, "what": "frame_step"},
               {"kind": "input_constant", "input": 2, "what": "window"}])],
    "Attention": [
        ("must be 4D", [{"kind": "input_rank", "input": i, "ranks": [4]} for i in range(3)]),
        ("inputs are unsupported", [{"kind": "input_absent", "inputs": [4, 5, 6]}]),
        ("outputs are unsupported", [{"kind": "outputs_unused", "outputs": [1, 2, 3]}]),
        ("attributes are unsupported", [{"kind": "attr_absent",
                                         "attrs": ["qk_matmul_output_mode", "softcap"]}]),
    ],
    "RotaryEmbedding": [("`position_ids` must be INT64",
                         [{"kind": "input_type", "input": 3, "types": ["INT64"]}])],
    "TensorScatter": [("must be 4D", [{"kind": "input_rank", "input": 0, "ranks": [4]},
                                      {"kind": "input_rank", "input": 1, "ranks": [4]}]),
                      ("`axis` must be -2", [{"kind": "attr_in", "attr": "axis",
                                              "values": [-2], "default": -2}])],
}

_HEADER = re.compile(r"TensorRT\s+([0-9.]+)\s+supports operators in the inclusive range of "
                     r"opset\s+(\d+)\s+to opset\s+(\d+)", re.IGNORECASE)
_DATA_TYPES = re.compile(r"supports the following ONNX data types:\s*(.+)")


def _split_types(text: str) -> list[str]:
    names = [re.sub(r"^and\s+", "", n.strip()) for n in re.split(r",", text.strip().rstrip("."))]
    names = [_TYPE_ERRATA.get(n, n) for n in names if n]
    return [_TYPE_NAMES.get(n, n) for n in names]


def _restriction_text(cell: str) -> str:
    text = re.sub(r"<br\s*/?>", " ", cell)
    return re.sub(r"\s+", " ", text).strip()


def parse_operators_md(text: str) -> dict:
    """One version's entry from an operators.md: header facts and the operator rows."""
    header = _HEADER.search(text)
    if header is None:
        raise ValueError("operators.md: no 'TensorRT X supports operators in the inclusive range "
                         "of opset A to opset B' sentence")
    types = _DATA_TYPES.search(text)
    ops, errata = {}, []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("Operator", "") or set(cells[0]) <= {"-"}:
            continue
        name, flag = cells[0], cells[1]
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            continue
        supported = flag.upper().startswith("Y")
        types_cell = cells[2] if len(cells) > 2 else ""
        restriction = _restriction_text(" ".join(cells[3:])) if len(cells) > 3 else ""
        if not supported and types_cell and not re.fullmatch(r"[A-Z0-9, ]+", types_cell):
            restriction, types_cell = _restriction_text(types_cell), ""  # "N | Not supported..."
        op_types = _split_types(types_cell) if supported else []
        for raw in re.split(r",\s*", types_cell):
            if raw.strip() in _TYPE_ERRATA:
                errata.append(f"{name}: type {raw.strip()} read as {_TYPE_ERRATA[raw.strip()]}")
        entry = {"supported": supported, "types": op_types, "restrictions": restriction,
                 "experimental": "EXPERIMENTAL" in flag.upper()}
        checks = []
        for fragment, op_checks in RESTRICTION_CHECKS.get(name, []):
            if fragment in restriction:
                checks.extend(op_checks)
        entry["checks"] = checks
        if restriction and not checks:
            entry["unchecked"] = restriction
        ops[name] = entry
    if not ops:
        raise ValueError("operators.md: no operator rows found")
    return {"tensorrt": header.group(1), "opset_min": int(header.group(2)),
            "opset_max": int(header.group(3)),
            "data_types": _split_types(types.group(1)) if types else [],
            "ops": dict(sorted(ops.items())), "errata": errata}


@lru_cache(maxsize=1)
def load_table() -> dict:
    """The packaged table: {"schema", "versions": {version: entry}}."""
    data = resources.files("attn_deploy").joinpath("data")
    text = data.joinpath(TABLE_RESOURCE).read_text("utf-8")
    table = json.loads(text)
    if table.get("schema") != SCHEMA:
        raise AssertionError(f"{TABLE_RESOURCE}: schema {table.get('schema')} != {SCHEMA}")
    return table


def table_versions() -> list[str]:
    """TensorRT versions the table covers, oldest first."""
    return sorted(load_table()["versions"], key=lambda v: tuple(int(p) for p in v.split(".")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("operators_md", type=Path)
    parser.add_argument("--version", required=True, help="TensorRT version the entry is for")
    parser.add_argument("--source", required=True, help="where operators.md came from")
    parser.add_argument("--note", action="append", default=[],
                        help="provenance note, e.g. how a version was derived (repeatable)")
    parser.add_argument("--drop-check", action="append", default=[], metavar="OP:FRAGMENT",
                        help="drop a restriction a later changelog lifted (repeatable)")
    parser.add_argument("--table", type=Path,
                        default=Path(__file__).resolve().parents[1] / "data" / TABLE_RESOURCE)
    args = parser.parse_args(argv)
    entry = parse_operators_md(args.operators_md.read_text("utf-8"))
    for item in args.drop_check:
        op, _, fragment = item.partition(":")
        e = entry["ops"][op]
        e["restrictions"] = e["restrictions"].replace(fragment, "").strip(" .|")
        e["checks"] = [c for f, cs in RESTRICTION_CHECKS.get(op, []) if f in e["restrictions"]
                       for c in cs]
        e.pop("unchecked", None)
        if e["restrictions"] and not e["checks"]:
            e["unchecked"] = e["restrictions"]
    entry["tensorrt"] = args.version
    entry["source"] = args.source
    entry["notes"] = args.note
    table = json.loads(args.table.read_text("utf-8")) if args.table.exists() else \
        {"schema": SCHEMA, "versions": {}}
    table["versions"][args.version] = entry
    table["versions"] = dict(sorted(table["versions"].items(),
                                    key=lambda kv: tuple(int(p) for p in kv[0].split("."))))
    args.table.write_text(json.dumps(table, indent=1, sort_keys=False) + "\n", "utf-8")
    print(f"{args.table}: TensorRT {args.version}, {len(entry['ops'])} operators, "
          f"opset {entry['opset_min']}-{entry['opset_max']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
