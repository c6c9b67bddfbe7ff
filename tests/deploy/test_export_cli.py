"""attn-deploy export --model: any nn.Module, with checkpoint, layer swaps, validation."""
import onnx
import pytest
import torch

from attn_deploy.cli import main

MODEL = "deploy_lookalikes:user_net"


def test_any_model_export_swaps_layers_and_validates(lookalikes, tmp_path, capsys):
    net = lookalikes.user_net()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "user.onnx"
    code = main(["export", "--model", MODEL, "--kwargs", '{"channels": 16}', "--checkpoint",
                 str(tmp_path / "w.pt"), "--input", "image:2x3x10x12",
                 "--dynamic", "image:0=N,2=H,3=W", "--output-names", "up", "pooled",
                 "-o", str(out), "--runtimes", "ort-cpu", "tensorrt"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "replaced 4 layer(s)" in text and "cca: CrissCrossAttention -> block cca" in text
    assert "swapped model matches the original" in text
    # the example shape and a second one with every dynamic size changed
    assert "image:2x3x10x12" in text and "image:3x3x11x13" in text and "PASS" in text
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["up", "pooled"]
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] \
        == ["N", 3, "H", "W"]


def test_explicit_validation_shapes(lookalikes, tmp_path, capsys):
    code = main(["export", "--model", "torch.nn:Conv2d", "--kwargs",
                 '{"in_channels": 3, "out_channels": 4, "kernel_size": 3}',
                 "--input", "x:2x3x8x8", "--dynamic", "x:2=H", "--shapes", "x:2x3x11x8",
                 "--shapes", "x:2x3x5x8", "-o", str(tmp_path / "c.onnx"),
                 "--runtimes", "ort-cpu"])
    text = capsys.readouterr().out
    assert code == 0 and "x:2x3x11x8" in text and "x:2x3x5x8" in text


@pytest.mark.parametrize("argv,words", [
    (["export"], "give a block KEY, --model"),
    (["export", "se", "--model", MODEL], "not both"),
    (["export", "--model", MODEL, "--input", "image:2x3x8x8"], "-o/--output FILE is required"),
    (["export", "--model", MODEL, "-o", "x.onnx"], "at least one --input"),
    (["export", "--model", MODEL, "-o", "x.onnx", "--input", "image:2x3x8x8", "--dynamic",
      "image:2-H"], "is not AXIS=SYMBOL"),
    (["export", "--model", MODEL, "-o", "x.onnx", "--input", "image:2x3x8x8", "--multiple",
      "H=8"], "no --dynamic axis uses"),
    (["export", "--model", MODEL, "-o", "x.onnx", "--input", "image:2x3x8x8", "--dims", "H=3"],
     "--dims: only for a registered block"),
    (["export", "--recipe", "r.toml", "--input", "x:1x2"], "a recipe says this itself"),
    (["export", "se", "-o", "se.onnx", "--runtimes", "ort-cpu"], "only with --model or --recipe"),
    (["export", "--model", MODEL, "-o", "x.onnx", "--input", "image:2x3x8x8", "--ema"],
     "--ema: only with --checkpoint"),
    (["export", "--recipe", "r.toml", "--checkpoint-key", "ema"], "a recipe says this itself"),
    (["export", "--model", MODEL, "--kwargs", "{bad", "-o", "x.onnx", "--input", "i:2x3"],
     "is not JSON"),
])
def test_bad_arguments_exit_2_with_a_message(lookalikes, capsys, argv, words):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_pickled_checkpoint_is_refused_on_the_command_line(lookalikes, tmp_path, capsys):
    torch.save(lookalikes.user_net(), tmp_path / "whole.pt")
    assert main(["export", "--model", MODEL, "--checkpoint", str(tmp_path / "whole.pt"),
                 "--input", "image:2x3x8x8", "-o", str(tmp_path / "u.onnx")]) == 2
    assert "holds a pickled deploy_lookalikes.UserNet object" in capsys.readouterr().err
