"""The trt-check, build-engine and plugins-path commands."""
import argparse
import json

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import attn_deploy as ad
from attn_deploy.cli import main
from attn_deploy.cli.trt_commands import add_commands
from attn_deploy.backends.tensorrt import plugin_library as pl
from attn_deploy.backends.tensorrt.runtime_env import tensorrt_availability


def test_commands_register():
    sub = argparse.ArgumentParser().add_subparsers()
    add_commands(sub)
    assert {"trt-check", "build-engine", "plugins-path"} <= set(sub.choices)


def test_trt_check_exit_codes_and_output(tmp_path, capsys):
    good = ad.export_block("se", tmp_path / "se.onnx")
    assert main(["trt-check", str(good)]) == 0
    assert "PASS" in capsys.readouterr().out
    x = h.make_tensor_value_info("x", T.FLOAT, [2])
    bad = tmp_path / "bad.onnx"
    onnx.save(h.make_model(h.make_graph([h.make_node("Unique", ["x"], ["y"], name="u")], "g", [x],
                                        [h.make_tensor_value_info("y", T.FLOAT, None)]),
                           opset_imports=[h.make_opsetid("", 18)]), bad)
    assert main(["trt-check", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "u [ai.onnx::Unique]: Unique is not supported" in out
    assert main(["trt-check", "--json", "--tensorrt", "11.1", str(bad)]) == 1
    verdict = json.loads(capsys.readouterr().out)[0]
    assert verdict["passed"] is False and list(verdict["versions"]) == ["11.1"]
    assert main(["trt-check", str(tmp_path / "none.onnx")]) == 2  # user error, named


def test_plugins_path(monkeypatch, tmp_path, capsys):
    lib = tmp_path / "libattn_deploy_plugins.so"
    lib.write_bytes(b"")
    monkeypatch.setenv(pl.ENV_VAR, str(lib))
    assert main(["plugins-path"]) == 0
    assert capsys.readouterr().out.strip() == str(lib)
    assert main(["plugins-path", "--static"]) == 1
    assert "libattn_deploy_plugins_static.so is not beside" in capsys.readouterr().err
    (tmp_path / "libattn_deploy_plugins_static.so").write_bytes(b"")
    assert main(["plugins-path", "--static"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "libattn_deploy_plugins_static.so")
    monkeypatch.delenv(pl.ENV_VAR)
    monkeypatch.setattr(pl, "candidate_paths", lambda: [])
    monkeypatch.setattr(pl.ctypes.util, "find_library", lambda name: None)
    assert main(["plugins-path"]) == 1
    assert "cmake -S plugins" in capsys.readouterr().err


def test_build_engine_without_tensorrt_is_a_clear_error(tmp_path, capsys):
    if tensorrt_availability()[0]:
        pytest.skip("TensorRT and a GPU are present "
                    "(tests/backends/tensorrt/test_tensorrt_engine.py)")
    path = ad.export_block("se", tmp_path / "se.onnx")
    assert main(["build-engine", str(path), "--fp16", "--min", "x:1x64x8x8"]) == 2
    assert "TensorRT is unavailable" in capsys.readouterr().err
