"""attn-deploy triton-repo: layout, config.pbtxt contents, batching rules, atomic replacement.
config.pbtxt is parsed with Triton's ModelConfig when tritonclient is installed."""
import re

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from attn_deploy.cli import main
from attn_deploy.deploy.pipeline import export_model
from attn_deploy.deploy.triton_repo import check_config, model_config_proto, write_triton_repo
from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import InputSpec


@pytest.fixture(scope="module")
def conv_onnx(tmp_path_factory):
    """A real export: dynamic N, H, W in, two outputs."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return y, y.mean((2, 3))

    path = tmp_path_factory.mktemp("onnx") / "seg.onnx"
    export_model(Net(), path, [InputSpec("x", ("N", 3, "H", "W"))], {"N": 2, "H": 8, "W": 8},
                 output_names=["y", "score"])
    return path


def _fields(text):
    """(name, data_type, dims) per tensor, read back from the pbtxt text: by hand it writes
    ``dims: [ -1, 3 ]``, through tritonclient's protobuf one ``dims: -1`` line per dim."""
    fields = []
    for block in re.findall(r"\{([^{}]*)\}", text):
        name, dtype = re.search(r'name: "(\w+)"', block), re.search(r"data_type: (\w+)", block)
        if name and dtype:
            dims = re.findall(r"-?\d+", " ".join(re.findall(r"dims: (\[[^\]]*\]|-?\d+)", block)))
            fields.append((name.group(1), dtype.group(1), ", ".join(dims)))
    return fields


def test_onnxruntime_repository(conv_onnx, tmp_path, capsys):
    assert main(["triton-repo", str(conv_onnx), "-o", str(tmp_path)]) == 0
    assert "serve: tritonserver --model-repository=" in capsys.readouterr().out
    model = tmp_path / "seg"
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*")) == \
        ["1", "1/model.onnx", "config.pbtxt"]
    assert (model / "1" / "model.onnx").read_bytes() == conv_onnx.read_bytes()
    text = (model / "config.pbtxt").read_text()
    assert 'name: "seg"' in text and 'platform: "onnxruntime_onnx"' in text
    # protobuf's text format leaves out a proto3 field at its default (0); by hand it is written
    assert ("max_batch_size: 0" in text or "max_batch_size" not in text)
    assert "dynamic_batching" not in text
    assert _fields(text) == [("x", "TYPE_FP32", "-1, 3, -1, -1"),
                             ("y", "TYPE_FP32", "-1, 4, -1, -1"), ("score", "TYPE_FP32", "-1, 4")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_batching_strips_the_batch_axis(conv_onnx, tmp_path):
    text = (write_triton_repo(conv_onnx, tmp_path, name="b", max_batch_size=8)
            / "config.pbtxt").read_text()
    assert "max_batch_size: 8" in text and re.search(r"dynamic_batching \{\s*\}", text)
    assert _fields(text) == [("x", "TYPE_FP32", "3, -1, -1"), ("y", "TYPE_FP32", "4, -1, -1"),
                             ("score", "TYPE_FP32", "4")]


def test_tensorrt_plan_notes_the_plugin_library(tmp_path):
    node = helper.make_node("CrissCrossAttention", ["q", "k", "v"], ["o"], domain="attn_deploy")
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8, "H", "W"])
    model = helper.make_model(helper.make_graph([node], "g", [vi("q"), vi("k"), vi("v")],
                                                [vi("o")]),
                              opset_imports=[helper.make_opsetid("", 18),
                                             helper.make_opsetid("attn_deploy", 1)])
    onnx.save(model, tmp_path / "cca.onnx")
    (tmp_path / "cca.engine").write_bytes(b"serialized engine")
    repo = tmp_path / "repo"
    repo.mkdir()
    with pytest.raises(AttnDeployError, match="ONNX Runtime cannot run it"):
        write_triton_repo(tmp_path / "cca.onnx", repo)  # no local functions: plan only
    target = write_triton_repo(tmp_path / "cca.onnx", repo, plan=tmp_path / "cca.engine",
                               plugin_library="/opt/lib/libattn_deploy_plugins.so")
    assert (target / "1" / "model.plan").read_bytes() == b"serialized engine"
    text = (target / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in text and "KIND_GPU" in text
    assert re.search(r"^#\s+LD_PRELOAD=/opt/lib/libattn_deploy_plugins.so tritonserver", text, re.M)
    assert '--backend-config=tensorrt,plugins="/opt/lib/libattn_deploy_plugins.so"' in text
    with pytest.raises(AttnDeployError, match="exists; pass overwrite=True"):
        write_triton_repo(tmp_path / "cca.onnx", repo, plan=tmp_path / "cca.engine")
    (tmp_path / "cca.engine").write_bytes(b"new engine")
    write_triton_repo(tmp_path / "cca.onnx", repo, plan=tmp_path / "cca.engine", overwrite=True)
    assert (target / "1" / "model.plan").read_bytes() == b"new engine"
    assert [p.name for p in repo.iterdir()] == ["cca"]


def test_refusals(conv_onnx, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    static = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                 [x], [y]))
    onnx.save(static, tmp_path / "static.onnx")
    with pytest.raises(AttnDeployError, match=r"needs a dynamic axis 0.*\['x', 'y'\]"):
        write_triton_repo(tmp_path / "static.onnx", tmp_path, max_batch_size=4)
    with pytest.raises(AttnDeployError, match="folder .* does not exist"):
        write_triton_repo(conv_onnx, tmp_path / "nope")
    with pytest.raises(AttnDeployError, match="model name"):
        write_triton_repo(conv_onnx, tmp_path, name="../evil")
    with pytest.raises(AttnDeployError, match="missing.onnx: no such file"):
        write_triton_repo(tmp_path / "missing.onnx", tmp_path)


def test_config_parses_with_tritons_schema(conv_onnx, tmp_path):
    if model_config_proto() is None:
        pytest.skip("tritonclient is not installed: config.pbtxt checked structurally only")
    config = check_config((write_triton_repo(conv_onnx, tmp_path, max_batch_size=4)
                           / "config.pbtxt").read_text())
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 4
    assert [(i.name, list(i.dims)) for i in config.input] == [("x", [3, -1, -1])]
    assert config.HasField("dynamic_batching")
    with pytest.raises(AttnDeployError, match="ModelConfig"):
        check_config('name: "m"\nmax_batch_sise: 1\n')
