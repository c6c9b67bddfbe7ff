"""Every bad ONNX file (bad_onnx_files.CASES) given to validate, trt-check, build-engine and
triton-repo: a one-line error naming the file and the problem, exit 2, no traceback, nothing
written; trt-check never says PASS for such a file."""
import sys
from pathlib import Path

import pytest

import attn_deploy as ad
from attn_deploy.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from bad_onnx_files import CASES, COMMANDS, VALIDATE_CASES  # noqa: E402


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return ad.export_block("se", tmp_path_factory.mktemp("good") / "se.onnx")


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_is_a_one_line_error_for_every_command(good, tmp_path, capsys, case):
    make, fragment = CASES[case]
    bad = tmp_path / "bad.onnx"
    make(good, bad)
    (tmp_path / "repo").mkdir()
    for command, args in COMMANDS.items():
        code, out, err = _run(args(bad, tmp_path), capsys)
        assert code == 2, f"{command} on {case}: exit {code}\n{out}\n{err}"
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("attn-deploy: error:"), (command, err)
        assert str(bad) in lines[0] and fragment in lines[0], (command, lines[0])
        assert "PASS" not in out
    assert not any((tmp_path / "repo").iterdir()), "triton-repo wrote something"


@pytest.mark.parametrize("case", sorted(VALIDATE_CASES))
def test_well_formed_file_asking_too_much_is_refused(good, tmp_path, capsys, case):
    make, fragment = VALIDATE_CASES[case]
    bad = tmp_path / "bad.onnx"
    make(good, bad)
    code, out, err = _run(COMMANDS["validate"](bad, tmp_path), capsys)
    assert code == 2 and fragment in err and "Traceback" not in err, err


def test_tensorrt_flavor_on_onnx_runtime_says_what_runs_it(tmp_path, capsys):
    path = ad.export_block("cca", tmp_path / "cca.onnx", flavor="tensorrt")
    code, out, err = _run(["validate", str(path), "--runtimes", "onnx-reference"], capsys)
    assert code == 2 and "--runtimes tensorrt" in err and "tensorrt' export flavor" in err
    (tmp_path / "repo").mkdir()
    code, out, err = _run(["triton-repo", str(path), "-o", str(tmp_path / "repo")], capsys)
    assert code == 2 and "ONNX Runtime cannot run it" in err


def test_a_good_file_with_its_external_data_still_validates(good, tmp_path, capsys):
    from bad_onnx_files import _external
    path = tmp_path / "ext.onnx"
    _external(good, path, keep_data=True)
    code, out, err = _run(["validate", str(path), "--runtimes", "onnx-reference"], capsys)
    assert code == 0 and out.count("pass") == 2, out + err
