"""A block's int8 validation (what `validate --precision int8` and the report's int8 column
run) and the report's int8 cells and summary."""
from attn_deploy.harness.report import render_markdown, row
from attn_deploy.harness.validate import Validation
from attn_deploy.quantize.block_quantization import int8_cell, validate_int8

from .conftest import CONFIGS


def test_validate_int8_and_its_report_cell(exported):
    import attn_deploy as ad
    model, path = exported["cca"]
    s = ad.spec("cca", **CONFIGS["cca"])
    v = validate_int8(Validation("cca", str(path), export_ok=True), model,
                      ["ort-cpu", "onnx-reference"], [dict(s.dims), s.alternate_dims()])
    assert v.passed and v.onnx_path.endswith("cca.int8.onnx")
    assert v.custom_nodes == ["attn_deploy::CrissCrossAttention"]
    runs = v.for_runtime("ort-cpu")
    assert len(runs) == 2 and len(v.for_runtime("onnx-reference")) == 2
    cell = int8_cell(v)
    assert cell["status"] == "pass" and cell["quantized_nodes"] == 6
    assert cell["sqnr_db"] == min(r.comparison.sqnr_db for r in runs) >= 20


def test_quantize_failure_is_an_error_cell(tmp_path):
    import attn_deploy as ad
    broken = tmp_path / "se.onnx"
    broken.write_bytes(b"not onnx")
    v = validate_int8(Validation("se", str(broken), export_ok=True), ad.create("se"),
                      ["ort-cpu"], [dict(ad.spec("se").dims)])
    assert not v.passed
    cell = int8_cell(v)
    assert cell["status"] == "error" and "not an ONNX model" in cell["message"]


def _row(name, status, sqnr, nodes=3):
    r = row(Validation(name, export_ok=True), int8={
        "status": status, "sqnr_db": sqnr, "cosine": 0.999, "quantized_nodes": nodes,
        "float_nodes": {"mm": "its input comes from Softmax"} if name == "b" else {},
        "message": ""})
    return r


def test_report_int8_column_and_summary():
    rows = [_row("a", "pass", 40.0), _row("b", "pass", 25.5), _row("c", "fail", 12.0),
            _row("d", "pass", 35.0), _row("rnn", "fp32", 140.0, nodes=0)]
    md = render_markdown(rows, {"x": "y"})
    assert "| int8 SQNR (ORT CPU) |" in md
    assert "pass 40.0 dB" in md and "fail 12.0 dB" in md and "fp32 (nothing to quantize)" in md
    # median over the four quantized blocks (12, 25.5, 35, 40) -> 30.25; the rnn is left out
    assert "median SQNR **30.2 dB** over 4 blocks" in md and "lowest 12.0 dB" in md
    assert "- `b`: pass 25.5 dB, 3 node(s) in int8, 1 kept float" in md
    assert "- `c`: fail 12.0 dB" in md and "- `a`" not in md
    assert "left out of the median): `rnn`" in md
    plain = render_markdown([row(Validation("a", export_ok=True))], {})  # --no-int8
    assert "median SQNR" not in plain and plain.rstrip().endswith("| - | - |")
