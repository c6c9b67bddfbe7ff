"""triton-repo on bad inputs: every case of triton_cases is a one-line AttnDeployError with its
cause and leaves the repository empty; names that would inject config fields never reach
config.pbtxt; a kill between the two renames of --overwrite is recovered by the next call."""
import os
import sys
from pathlib import Path

import onnx
import pytest

from attn_deploy.cli import main
from attn_deploy.deploy.triton_repo import check_config, model_config_proto, write_triton_repo

# the case table is a plain module beside this file (see test_block_args.py)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import triton_cases  # noqa: E402
from triton_cases import CASES, CLEAR, Case, outcome  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_error(case, tmp_path):
    result, message = outcome(case, tmp_path)
    assert result == CLEAR, f"{case.name}: {result}: {message}"


def test_counts_cover_every_case(monkeypatch):
    seen = []
    monkeypatch.setattr(triton_cases, "outcome", lambda case, root: seen.append(case) or
                        ("accepted", ""))
    assert triton_cases.counts() == {triton_cases.CATEGORY: {"tried": len(CASES),
                                                             "accepted": len(CASES)}}
    assert seen == CASES


def _good_model(tmp_path, name="m"):
    path = tmp_path / f"{name}.onnx"
    onnx.save(triton_cases._model(Case("good", "")), path)
    return path


def test_safe_names_pass_and_parse(tmp_path):
    # The names torch.onnx gives: '/', ':', '.' must stay allowed.
    case = Case("torch names", "", input_name="onnx::Relu_0", output_name="/relu/Relu_output.0")
    path = tmp_path / "t.onnx"
    onnx.save(triton_cases._model(case), path)
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (write_triton_repo(path, repo) / "config.pbtxt").read_text()
    assert 'name: "onnx::Relu_0"' in text and 'name: "/relu/Relu_output.0"' in text
    if model_config_proto() is not None:
        config = check_config(text)
        assert [i.name for i in config.input] == ["onnx::Relu_0"]
        assert config.backend == "" and config.platform == "onnxruntime_onnx"


def test_cli_refuses_injection_in_one_line(tmp_path, capsys):
    case = Case("cli", "", input_name=triton_cases.INJECTION)
    path = tmp_path / "m.onnx"
    onnx.save(triton_cases._model(case), path)
    assert main(["triton-repo", str(path), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attn-deploy: error: input ") and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_plan_is_said_unchecked(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(triton_cases._model(Case("plan", "", graph="custom")), path)
    (tmp_path / "m.engine").write_bytes(b"\x00serialized engine")
    assert main(["triton-repo", str(path), "-o", str(tmp_path), "--plan",
                 str(tmp_path / "m.engine")]) == 0
    assert "the plan m.engine itself was not checked (TensorRT is needed" in \
        capsys.readouterr().out


def _kill_after_first_rename(monkeypatch):
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) >= 2:  # killed at the second rename: nothing after it runs either
            raise KeyboardInterrupt("killed")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    # The except-branch cleanup would not run after a real SIGKILL: make it do nothing.
    monkeypatch.setattr("attn_deploy.deploy.triton_repo.shutil.rmtree", lambda *a, **k: None)


def test_kill_between_renames_is_recovered(tmp_path, monkeypatch):
    path = _good_model(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    served = write_triton_repo(path, repo)
    before = (served / "config.pbtxt").read_text()
    with monkeypatch.context() as m:
        _kill_after_first_rename(m)
        with pytest.raises(KeyboardInterrupt):
            write_triton_repo(path, repo, overwrite=True)
    # What the kill left: no model folder, the old one hidden, a staging copy.
    assert not served.exists()
    assert len(list(repo.glob(".m~old~*"))) == 1 and len(list(repo.glob(".m~new~*"))) == 1
    notes = []
    with pytest.raises(Exception, match="exists; pass overwrite=True"):
        write_triton_repo(path, repo, notes=notes)
    assert (served / "config.pbtxt").read_text() == before  # the old model is back
    assert any(n.startswith("restored ") for n in notes) and len(notes) == 2
    assert [p.name for p in repo.iterdir()] == ["m"]


def test_leftover_beside_a_served_model_is_removed(tmp_path, capsys):
    path = _good_model(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    write_triton_repo(path, repo)
    stale = repo / ".m~old~abcd1234" / "m"
    stale.mkdir(parents=True)
    assert main(["triton-repo", str(path), "-o", str(repo), "--overwrite"]) == 0
    assert "note: removed .m~old~abcd1234" in capsys.readouterr().out
    assert [p.name for p in repo.iterdir()] == ["m"]


@pytest.mark.parametrize("by_hand", [True, False], ids=["by-hand", "protobuf"])
def test_config_text_refuses_unsafe_names_either_way(by_hand, monkeypatch):
    from attn_deploy.deploy import triton_repo
    from attn_deploy.errors import AttnDeployError

    message = model_config_proto()  # Triton's ModelConfig, read before the patch below
    if by_hand:
        monkeypatch.setattr(triton_repo, "model_config_proto", lambda: None)
    elif message is None:
        pytest.skip("tritonclient is not installed")
    good = triton_repo.TensorIO("x", "TYPE_FP32", (-1, 3))
    bad = triton_repo.TensorIO(triton_cases.INJECTION, "TYPE_FP32", (-1, 3))
    with pytest.raises(AttnDeployError, match="characters"):
        triton_repo.config_text("m", "onnxruntime", [bad], [good])
    with pytest.raises(AttnDeployError, match="line break"):
        triton_repo.config_text("m", "onnxruntime", [good], [good], header=["a\nbackend: 'x'"])
    text = triton_repo.config_text("m", "tensorrt", [good],
                                   [triton_repo.TensorIO("y", "TYPE_FP16", (-1, 3))], 4)
    if message is not None:  # both writers give the same ModelConfig
        from google.protobuf import text_format
        config = text_format.Parse(text, message())
        assert (config.name, config.platform, config.max_batch_size) == ("m", "tensorrt_plan", 4)
        assert [(o.name, list(o.dims)) for o in config.output] == [("y", [3])]
        assert config.instance_group[0].count == 1 and config.backend == ""
