"""Export recipes: the shipped ones export and validate; bad ones are refused by key."""
from pathlib import Path

import pytest

from attn_deploy.cli import main
from attn_deploy.deploy.recipe import load_recipe
from attn_deploy.errors import AttnDeployError

RECIPES = Path(__file__).resolve().parents[2] / "export"


def test_shipped_recipes_load():
    ccnet = load_recipe(RECIPES / "ccnet_resnet.toml")
    assert ccnet.factory == "attn_deploy.deploy.reference_networks:ccnet_resnet"
    assert ccnet.inputs[0].template == ("N", 3, "H", "W")
    assert {"N": 1, "H": 97, "W": 61} in ccnet.shapes and ccnet.multiples == {}
    assert ccnet.output_names == ["logits"] and ccnet.tensorrt["precision"] == "fp16"
    fpn = load_recipe(RECIPES / "fpn_carafe_resnet.toml")
    assert fpn.multiples == {"H": 64, "W": 64}
    assert fpn.output_names == ["p2", "p3", "p4", "p5", "p6"]
    assert fpn.tensorrt["opt"] == {"N": 1, "H": 832, "W": 1216}  # 800 x 1216 padded to 64
    # the recipes end to end (export from an mmengine checkpoint, validation, trt-check):
    # test_reference_networks.py


def _write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


GOOD = """
[model]
factory = "attn_deploy.deploy.reference_networks:ccnet_resnet"
[inputs]
image = ["N", 3, "H", "W"]
[export]
output = "x.onnx"
dims = { N = 2, H = 16, W = 16 }
[validate]
shapes = [{ N = 2, H = 16, W = 16 }, { N = 3, H = 19, W = 16 }]
"""


@pytest.mark.parametrize("edit,words", [
    (("[validate]", "[valdate]"), r"unknown \['valdate'\], missing \['validate'\]"),
    (("output =", "outptu = 1\noutput ="), r"unknown key\(s\) \['outptu'\] in \[export\]"),
    (('factory = "attn_deploy.deploy.reference_networks:ccnet_resnet"', ""), "factory"),
    (("{ N = 3, H = 19, W = 16 }", ""), "two or more size tables"),
    (("dims = { N = 2, H = 16, W = 16 }", "dims = { N = 2, H = 16 }"), r"missing \['W'\]"),
    (('image = ["N", 3, "H", "W"]', 'image = ["N", 0, "H", "W"]'), "neither a size"),
    (("dims = {", "multiples = { H = 8 }\ndims = {"), "H must be .* a multiple of 8"),
    (("[model]", "[model"), "not valid TOML"),
    (("[model]", "[model]\nema = true"), "ema needs a checkpoint"),
    (("[model]", "[model]\ncheckpoint = \"w.pt\"\nema = 1"), "ema must be a bool"),
])
def test_bad_recipes_name_the_key(tmp_path, edit, words):
    with pytest.raises(AttnDeployError, match=words):
        load_recipe(_write(tmp_path, GOOD.replace(*edit)))
    assert load_recipe(_write(tmp_path, GOOD)).shapes[1] == {"N": 3, "H": 19, "W": 16}


def test_engine_step_builds_with_the_recipe_profile(tmp_path, monkeypatch):
    """Where TensorRT is present the recipe's engine is built with its min/opt/max profile and
    copied to the recipe's path (the builder itself is tested in tests/backends/tensorrt)."""
    import attn_deploy.backends as backends
    import attn_deploy.backends.tensorrt.engine_builder as engine_builder
    from attn_deploy.deploy.pipeline import run_recipe

    calls = []

    def fake_build(onnx_path, **kw):
        calls.append((onnx_path, kw))
        cached = tmp_path / "cache.engine"
        cached.write_bytes(b"engine bytes")
        return type("Build", (), {"path": cached})()

    monkeypatch.setattr(backends, "availability", lambda runtime: (True, ""))
    monkeypatch.setattr(engine_builder, "build_engine", fake_build)
    import attn_deploy.deploy.pipeline as pipeline

    def fake_export(model, output, inputs, dims, **kw):  # the export is tested elsewhere
        Path(output).write_bytes(b"onnx")
        return Path(output), ["p2", "p3", "p4", "p5", "p6"]

    monkeypatch.setattr(pipeline, "export_model", fake_export)
    recipe = load_recipe(RECIPES / "fpn_carafe_resnet.toml")
    recipe.kwargs.update(base_channels=8, stage_blocks=[1, 1, 1, 1], out_channels=16,
                         compressed_channels=8)
    recipe.tensorrt["engine"] = str(tmp_path / "trt" / "fpn.engine")
    result = run_recipe(recipe, output=tmp_path / "fpn.onnx", validate=False)
    assert result.engine.status == "built" and result.passed
    assert (tmp_path / "trt" / "fpn.engine").read_bytes() == b"engine bytes"
    (onnx_path, kw), = calls
    assert onnx_path == tmp_path / "fpn.onnx" and kw["precision"] == "fp16"
    assert kw["min_shapes"] == {"image": (1, 3, 64, 64)}
    assert kw["opt_shapes"] == {"image": (1, 3, 832, 1216)}
    assert kw["max_shapes"] == {"image": (2, 3, 1344, 1344)}


def test_bench_recipe_times_eager_against_the_export(tmp_path, capsys):
    recipe = _write(tmp_path, GOOD.replace('factory = "attn_deploy.deploy.reference_networks:'
                                           'ccnet_resnet"', 'factory = "torch.nn:Conv2d"\n'
                                           'kwargs = { in_channels = 3, out_channels = 4, '
                                           'kernel_size = 3 }')
                    .replace("[export]", "[export]\nmultiples = { W = 8 }"))
    assert main(["bench", "--recipe", str(recipe), "--shapes", "image:1x3x20x24",
                 "--runtimes", "torch-cpu", "ort-cpu", "--repeats", "3", "--warmup", "1"]) == 0
    text = capsys.readouterr().out
    assert "r  image:1x3x20x24" in text and "ORT CPU / eager:" in text
    assert [line.split()[0] for line in text.splitlines()[2:4]] == ["torch-cpu", "ort-cpu"]
    assert main(["bench", "--recipe", str(recipe), "--shapes", "image:1x3x20x20"]) == 2
    assert "dim W must be >= 1 and a multiple of 8, got 20" in capsys.readouterr().err
    assert main(["bench", "se", "--recipe", str(recipe)]) == 2
