"""The attn-deploy command line, run in-process."""
import json

import pytest

import attn_deploy as ad
from attn_deploy.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "se " in out and "SENet" in out and "channel" in out


def test_export_then_validate_file_and_block(tmp_path, capsys):
    f = tmp_path / "se.onnx"
    assert main(["export", "se", "-o", str(f), "--dims", "H=8,W=10"]) == 0
    assert f.exists()
    assert main(["validate", str(f), "--runtimes", "ort-cpu", "onnx-reference"]) == 0
    out = capsys.readouterr().out
    assert "onnx-reference" in out and "PASS" in out
    assert main(["validate", "se", "--runtimes", "ort-cpu", "--shapes", "x:1x64x7x9",
                 "--shapes", "x:3x64x12x5", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "x:1x64x7x9" in out and "x:3x64x12x5" in out


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["validate", "nope"]) == 2
    assert "block keys" in capsys.readouterr().err
    assert main(["validate", "se", "--shapes", "x:1x3x7x9"]) == 2
    assert "expected shape (N, 64, H, W)" in capsys.readouterr().err
    assert main(["export", "se", "-o", str(tmp_path / "no" / "se.onnx")]) == 2
    with pytest.raises(SystemExit):
        main(["validate", "se", "--runtimes", "tvm"])


def test_report_writes_markdown_and_json(tmp_path, capsys):
    assert main(["report", "--keys", "se", "eca", "--out", str(tmp_path),
                 "--runtimes", "ort-cpu", "onnx-reference"]) == 0
    data = json.loads((tmp_path / "compat.json").read_text())
    rows = {r["block"]: r for r in data["blocks"]}
    assert set(rows) == {"se", "eca"} and all(r["passed"] for r in rows.values())
    assert rows["se"]["ort_over_eager"] > 0
    md = (tmp_path / "compat.md").read_text()
    assert "| se |" in md and "2 of 2 blocks pass" in md


def test_report_puts_the_table_into_the_readme(tmp_path):
    from attn_deploy.harness.report import README_END, README_START
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{README_START}\nold\n{README_END}\n\nafter\n")
    assert main(["report", "--keys", "se", "--out", str(tmp_path / "r"), "--runtimes",
                 "ort-cpu", "--no-latency", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "| se |" in text and "old" not in text and text.endswith("after\n")
    assert text.startswith("# t\n")


def test_cli_edge_cases_are_clear_errors(tmp_path, capsys):
    f = tmp_path / "se.onnx"
    assert main(["export", "se", "-o", str(f)]) == 0
    capsys.readouterr()
    cases = [
        (["validate", "se", "--runtimes", "torch-cpu"], "PyTorch is the reference"),
        (["validate", str(f), "--runtimes", "ort-cpu"], "is the reference for an ONNX file"),
        (["validate", str(f), "--shapes", "x:2x64x0x8"], "sizes must be >= 1"),
        (["validate", str(f), "--shapes", "x:2x64x8x8,typo:3"], "no input(s) ['typo']"),
        (["validate", str(f), "--shapes", "x:2x32x8x8"], "expected shape"),
        (["bench", str(f), "--shapes", "y:2x3"], "missing ['x'], unknown ['y']"),
        (["report", "--keys", "se", "nosuch", "--out", str(tmp_path / "r")], "nosuch"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "r").exists(), "an unknown key must fail before any work"


def test_validate_file_reports_a_model_that_cannot_run_a_shape(tmp_path, capsys):
    f = tmp_path / "syn.onnx"
    assert main(["export", "synthesizer", "-o", str(f)]) == 0
    capsys.readouterr()
    assert main(["validate", str(f), "--runtimes", "onnx-reference",
                 "--shapes", "x:2x20x32"]) == 2
    assert "cannot run shapes x:2x20x32" in capsys.readouterr().err


def test_list_shows_where_each_block_lives(capsys):
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "attn_deploy/modules/feature_bank.py" in rows["lfb"]
    assert "attn_deploy/modules/cross_attention_can.py" in rows["can_cross_attention"]
    assert len(rows) == len(ad.list_modules()) + 1  # and the header
