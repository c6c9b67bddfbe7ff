"""The packaged operator-support table and the operators.md reader that makes it."""
import pytest

from attn_deploy.trt_check.support_table import load_table, parse_operators_md, table_versions

DOC = """# Supported ONNX Operators

TensorRT 10.9 supports operators in the inclusive range of opset 9 to opset 22. More below.

TensorRT supports the following ONNX data types: DOUBLE, FLOAT32, FLOAT16, INT32, and BOOL

| Operator                  | Supported  | Supported Types | Restrictions |
|---------------------------|------------|-----------------|--------------|
| Abs                       | Y          | FP32, FP16, INT32 |
| ConstantOfShape           | Y          | FP32, INF64, BOOL |
| ReduceSum                 | Y          | FP32, FP16 | `axes` must be an initializer |
| Resize                    | Y          | FP32 | Supported resize modes: `nearest`, `linear`.<br />Antialiasing is not supported.|
| Unique                    | N          |
| DynamicQuantizeLinear     | N          | Not supported. Compose it. |
| If                        | Y          | FP32, BOOL | Output tensors of the two branches must have the same rank
"""


def test_reader_takes_the_facts_the_doc_states():
    entry = parse_operators_md(DOC)
    assert (entry["tensorrt"], entry["opset_min"], entry["opset_max"]) == ("10.9", 9, 22)
    assert entry["data_types"] == ["DOUBLE", "FP32", "FP16", "INT32", "BOOL"]
    ops = entry["ops"]
    assert ops["Abs"] == {"supported": True, "types": ["FP32", "FP16", "INT32"], "checks": [],
                          "restrictions": "", "experimental": False}
    assert ops["ConstantOfShape"]["types"] == ["FP32", "INT64", "BOOL"]
    assert entry["errata"] == ["ConstantOfShape: type INF64 read as INT64"]
    assert ops["ReduceSum"]["checks"] == [{"kind": "input_constant", "input": 1, "what": "axes"}]
    # Only the restrictions this doc states become checks: no coordinate-mode check here.
    assert [c["attr"] for c in ops["Resize"]["checks"]] == ["mode", "antialias"]
    assert ops["Unique"]["supported"] is False and ops["Unique"]["types"] == []
    assert ops["DynamicQuantizeLinear"]["restrictions"].startswith("Not supported")
    assert ops["If"]["unchecked"].startswith("Output tensors")


def test_reader_rejects_a_file_that_is_not_the_operator_list():
    with pytest.raises(ValueError, match="inclusive range"):
        parse_operators_md("# Something else\n| A | Y |")


def test_packaged_table_covers_jetpack_and_newest():
    table = load_table()
    assert table_versions() == ["10.3", "11.1"]
    old, new = (table["versions"][v] for v in ("10.3", "11.1"))
    assert (old["opset_min"], old["opset_max"]) == (9, 20)
    assert (new["opset_min"], new["opset_max"]) == (9, 24)
    assert "source" in old and old["notes"], "10.3's derivation must be recorded"
    # 10.3 added tensor axes for Slice (changelog): no Slice restriction left.
    assert old["ops"]["Slice"]["checks"] == [] and old["ops"]["Slice"]["restrictions"] == ""
    # 10.4 added tensor axes for Pad: still a restriction in 10.3, gone in 11.1.
    assert old["ops"]["Pad"]["checks"] and not new["ops"]["Pad"]["checks"]
    assert "Attention" not in old["ops"] and new["ops"]["Attention"]["supported"]
    assert old["ops"]["STFT"]["supported"] is False and new["ops"]["STFT"]["supported"] is True
    for entry in (old, new):
        for name, op in entry["ops"].items():
            assert op["supported"] or not op["checks"], name
            assert all(t.isupper() for t in op["types"]), name
