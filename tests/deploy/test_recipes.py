"""Export recipes: the shipped ones export and validate; bad ones are refused by key."""
from pathlib import Path

import onnx
import pytest

from attn_deploy.cli import main
from attn_deploy.deploy.recipe import load_recipe
from attn_deploy.errors import AttnDeployError

RECIPES = Path(__file__).resolve().parents[2] / "export"


def test_shipped_recipes_load():
    ccnet = load_recipe(RECIPES / "ccnet_small.toml")
    assert ccnet.factory == "attn_deploy.deploy.examples:ccnet_small"
    assert ccnet.inputs[0].template == ("N", 3, "H", "W") and len(ccnet.shapes) == 2
    assert ccnet.output_names == ["logits"] and ccnet.tensorrt["precision"] == "fp16"
    fpn = load_recipe(RECIPES / "carafe_fpn_small.toml")
    assert fpn.multiples == {"H": 8, "W": 8} and fpn.output_names == ["p1", "p2", "p3"]


@pytest.mark.parametrize("name,custom,outputs", [
    ("ccnet_small", "attn_deploy::CrissCrossAttention", ["logits"]),
    ("carafe_fpn_small", "attn_deploy::CARAFE", ["p1", "p2", "p3"]),
])
def test_recipe_exports_and_validates_at_two_shapes(tmp_path, capsys, name, custom, outputs):
    out = tmp_path / f"{name}.onnx"
    code = main(["export", "--recipe", str(RECIPES / f"{name}.toml"), "-o", str(out),
                 "--runtimes", "ort-cpu", "onnx-reference", "tensorrt"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"custom: {custom}" in text and text.rstrip().endswith("PASS")
    recipe = load_recipe(RECIPES / f"{name}.toml")
    for dims in recipe.shapes:  # both shapes, on both CPU runtimes
        label = f"image:{dims['N']}x3x{dims['H']}x{dims['W']}"
        assert sum(1 for line in text.splitlines() if label in line and " pass " in line) == 2
    proto = onnx.load(str(out))
    assert [o.name for o in proto.graph.output] == outputs
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", "", "H", "W"]
    assert "engine: built" in text or "engine: unavailable" in text


def _write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


GOOD = """
[model]
factory = "attn_deploy.deploy.examples:ccnet_small"
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
    (('factory = "attn_deploy.deploy.examples:ccnet_small"', ""), "factory"),
    (("{ N = 3, H = 19, W = 16 }", ""), "two or more size tables"),
    (("dims = { N = 2, H = 16, W = 16 }", "dims = { N = 2, H = 16 }"), r"missing \['W'\]"),
    (('image = ["N", 3, "H", "W"]', 'image = ["N", 0, "H", "W"]'), "neither a size"),
    (("dims = {", "multiples = { H = 8 }\ndims = {"), "H must be .* a multiple of 8"),
    (("[model]", "[model"), "not valid TOML"),
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
    recipe = load_recipe(RECIPES / "carafe_fpn_small.toml")
    recipe.tensorrt["engine"] = str(tmp_path / "trt" / "fpn.engine")
    result = run_recipe(recipe, output=tmp_path / "fpn.onnx", validate=False)
    assert result.engine.status == "built" and result.passed
    assert (tmp_path / "trt" / "fpn.engine").read_bytes() == b"engine bytes"
    (onnx_path, kw), = calls
    assert onnx_path == tmp_path / "fpn.onnx" and kw["precision"] == "fp16"
    assert kw["min_shapes"] == {"image": (1, 3, 32, 32)}
    assert kw["opt_shapes"] == {"image": (2, 3, 64, 64)}
    assert kw["max_shapes"] == {"image": (4, 3, 128, 128)}
