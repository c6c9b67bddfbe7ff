"""--json, --junit-xml and --require on validate, export and report, and the documented exit
codes (0 pass, 1 parity failure, 2 bad input, 3 a required runtime absent)."""
import json
import xml.etree.ElementTree as ET

import pytest

from attn_deploy.cli import build_parser, main

CONV = ["export", "--model", "torch.nn:Conv2d", "--kwargs",
        '{"in_channels": 3, "out_channels": 4, "kernel_size": 3}', "--input", "x:2x3x8x8",
        "--dynamic", "x:0=N,2=H,3=W"]


def test_validate_block_results_and_required_runtime(tmp_path, capsys, absent_runtime):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    assert main(["validate", "se", "--runtimes", "ort-cpu", "--require", absent_runtime,
                 "--json", str(js), "--junit-xml", str(xml)]) == 3
    captured = capsys.readouterr()
    assert f"required runtime {absent_runtime} is absent" in captured.err
    data = json.loads(js.read_text())
    assert data["exit_code"] == 3 and data["command"] == "validate"
    (v,) = data["validations"]
    # --require runs the runtime even though --runtimes left it out
    assert [(r["runtime"], r["status"]) for r in v["rows"]] == [
        ("ort-cpu", "pass"), ("ort-cpu", "pass"), (absent_runtime, "unavailable")]
    suite = ET.parse(xml).getroot().find("testsuite")
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == [f"{rt}[{s}]" for rt in ("ort-cpu", absent_runtime) for s in v["shapes"]]
    assert suite.get("failures") == "2" and suite.get("skipped") == "0"
    # the same run without --require: the absent runtime is a skip, and the run passes
    assert main(["validate", "se", "--runtimes", "ort-cpu", absent_runtime,
                 "--junit-xml", str(xml)]) == 0
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("skipped") == "2"


def test_bad_input_exits_2_before_any_work(tmp_path, capsys):
    missing = str(tmp_path / "no" / "r.json")
    assert main(["validate", "se", "--json", missing]) == 2
    assert "folder" in capsys.readouterr().err
    assert main(["validate", "se", "--save-outputs", "a.npz", "--load-outputs", "b.npz"]) == 2
    assert main(["validate", "se", "--load-outputs", "b.npz", "--shapes", "x:1x64x8x8"]) == 2
    assert main(["export", "se", "-o", str(tmp_path / "se.onnx"), "--junit-xml", "r.xml"]) == 2
    assert "--junit-xml: only with --model or --recipe" in capsys.readouterr().err
    assert main(CONV + ["-o", str(tmp_path / "c.onnx"), "--no-validate", "--json", "r.json"]) \
        == 2
    assert "leave out --no-validate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: usage errors exit 2 too
        main(["validate", "se", "--require", "tvm"])
    assert exc.value.code == 2
    assert not (tmp_path / "se.onnx").exists() and not (tmp_path / "c.onnx").exists()


def test_exit_codes_are_in_the_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("validate", "export", "report"):
        text = sub[command].format_help()
        assert "3 a runtime named by --require is absent" in " ".join(text.split()), command


def test_export_model_writes_results(tmp_path, capsys, absent_runtime):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    code = main(CONV + ["-o", str(tmp_path / "c.onnx"), "--runtimes", "ort-cpu",
                        "--json", str(js), "--junit-xml", str(xml)])
    assert code == 0, capsys.readouterr().out
    data = json.loads(js.read_text())
    assert data["command"] == "export" and data["exit_code"] == 0
    assert [r["status"] for r in data["validations"][0]["rows"]] == ["pass", "pass"]
    assert ET.parse(xml).getroot().get("tests") == "2"
    assert main(CONV + ["-o", str(tmp_path / "c.onnx"), "--runtimes", "ort-cpu",
                        "--require", absent_runtime]) == 3


def test_report_writes_one_suite_per_block(tmp_path, capsys):
    xml = tmp_path / "r.xml"
    assert main(["report", "--keys", "se", "eca", "--out", str(tmp_path), "--no-latency",
                 "--runtimes", "ort-cpu", "--junit-xml", str(xml), "--json",
                 str(tmp_path / "r.json")]) == 0
    suites = ET.parse(xml).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["attn_deploy.report.se", "attn_deploy.report.eca"]
    assert all(s.get("tests") == "2" and s.get("failures") == "0" for s in suites)
    data = json.loads((tmp_path / "r.json").read_text())
    assert [v["name"] for v in data["validations"]] == ["se", "eca"]
