"""The registry's public contract: keys, specs, create, example_inputs and their errors."""
import pytest
import torch

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError) as e:
        ad.create("no_such_block")
    msg = str(e.value)
    assert "no_such_block" in msg and "se" in msg and "cbam" in msg
    with pytest.raises(ValueError):
        ad.spec("no_such_block")
    with pytest.raises(ValueError):
        ad.example_inputs("no_such_block")


def test_list_modules_is_sorted_and_unique():
    keys = ad.list_modules()
    assert keys == sorted(set(keys)) and "se" in keys


def test_spec_follows_constructor_kwargs():
    s = ad.spec("se", channels=32)
    assert s.inputs["x"] == ("N", 32, "H", "W")
    assert s.config["channels"] == 32
    x, = ad.example_inputs("se", config={"channels": 32}, H=7, W=9)
    assert x.shape == (2, 32, 7, 9)
    assert ad.create("se", channels=32)(x).shape == x.shape


def test_create_rejects_unknown_kwargs_and_records_config():
    with pytest.raises(AttnDeployError, match="unknown argument"):
        ad.create("se", chanels=32)
    m = ad.create("se", channels=16)
    assert m.attn_deploy_config == {"key": "se", "kwargs": {"channels": 16}}
    assert not m.training


def test_example_inputs_are_seeded():
    a, = ad.example_inputs("se", seed=1)
    b, = ad.example_inputs("se", seed=1)
    c, = ad.example_inputs("se", seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dims_are_validated():
    s = ad.spec("se")
    with pytest.raises(AttnDeployError, match="unknown dim symbol"):
        s.shapes(Q=3)
    with pytest.raises(AttnDeployError, match="must be >= 1"):
        s.shapes(H=0)


def test_multiples_and_bounds_shape_alternate_dims():
    from attn_deploy.modules.registry import BlockSpec
    s = BlockSpec(key="k", title="t", paper="p", family="spatial", export_path="std",
                  inputs={"x": ("N", 8, "H", "W"), "m": ("N", "L")}, outputs=("y",),
                  dims={"N": 2, "H": 16, "W": 12, "L": 8}, multiples={"H": 4},
                  max_dims={"L": 10})
    alt = s.alternate_dims()
    assert alt["H"] % 4 == 0 and alt["H"] != 16
    assert alt["L"] <= 10 and alt["L"] != 8
    assert alt["W"] % 2 == 1  # odd where allowed
    with pytest.raises(AttnDeployError, match="multiple of 4"):
        s.shapes(H=18)
    with pytest.raises(AttnDeployError, match="<= 10"):
        s.shapes(L=11)
    assert s.dynamic_axes() == {"x": {0: "N", 2: "H", 3: "W"}, "m": {0: "N", 1: "L"}}


def test_layer_choices_by_name_or_class():
    from attn_deploy.modules.layers import create_act
    assert isinstance(create_act("gelu"), torch.nn.GELU)
    assert isinstance(create_act(torch.nn.Tanh), torch.nn.Tanh)
    with pytest.raises(AttnDeployError, match="unknown activation 'nope'"):
        create_act("nope")


def test_every_spec_names_the_file_that_registers_its_block():
    from pathlib import Path
    root = Path(ad.__file__).resolve().parents[1]
    for key in ad.list_modules():
        file = ad.spec(key).file
        assert file.startswith("attn_deploy/modules/") and file.endswith(".py"), (key, file)
        assert f'"{key}"' in (root / file).read_text(), (key, file)
    assert ad.spec("lfb").file == "attn_deploy/modules/feature_bank.py"


def test_spec_is_read_back_from_an_exported_file(tmp_path):
    import onnx

    from attn_deploy.modules.registry import spec_from_onnx
    path = ad.export_block("se", tmp_path / "se.onnx", model=ad.create("se", channels=16))
    s = spec_from_onnx(path)
    assert s == ad.spec("se", channels=16) and s.inputs["x"] == ("N", 16, "H", "W")
    assert spec_from_onnx(onnx.load(str(path))) == s
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    assert spec_from_onnx(proto) is None


def test_spec_from_a_file_names_the_file_when_its_block_metadata_is_unusable(tmp_path):
    import onnx

    from attn_deploy.modules.registry import spec_from_onnx
    path = ad.export_block("se", tmp_path / "se.onnx", model=ad.create("se", channels=16))
    for block, config, match in [
            ("nosuch", "{}", r"se\.onnx: exported from block 'nosuch' .*known blocks: .*\bse\b"),
            ("se", "{not json", r"se\.onnx: unreadable attn_deploy_config"),
            ("se", "[16]", r"se\.onnx: unreadable attn_deploy_config .*JSON object"),
            ("se", '{"chanels": 16}', r"se\.onnx: attn_deploy_config metadata: se: unknown "
                                      r"argument\(s\) \['chanels'\]")]:
        proto = onnx.load(str(path))
        meta = {p.key: p for p in proto.metadata_props}
        meta["attn_deploy_block"].value, meta["attn_deploy_config"].value = block, config
        edited = tmp_path / "edited" / "se.onnx"
        edited.parent.mkdir(exist_ok=True)
        onnx.save(proto, str(edited))
        with pytest.raises(ad.AttnDeployError, match=match):
            spec_from_onnx(edited)
