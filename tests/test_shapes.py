"""The shape vocabulary: trtexec-style shape arguments, SYMBOL=INT, and their mapping onto the
symbols of a block spec or a user model's inputs."""
import pytest

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import (InputSpec, dims_from_shapes, format_shapes, parse_shapes,
                                parse_symbol_ints, shapes_to_dims)


def test_parse_and_format_round_trip():
    s = parse_shapes("x:1x64x32x32, mask:1x16")
    assert s == {"x": (1, 64, 32, 32), "mask": (1, 16)}
    assert parse_shapes(format_shapes(s)) == s


@pytest.mark.parametrize("bad,match", [("x1x2", "NAME:D0"), ("x:1xAx2", "integers"),
                                       ("x:1,x:2", "twice"), ("", "no shapes")])
def test_parse_errors(bad, match):
    with pytest.raises(AttnDeployError, match=match):
        parse_shapes(bad)


def test_dims_from_shapes_checks_fixed_sizes_and_agreement():
    s = ad.spec("se")
    assert s.dims_from_shapes({"x": (3, 64, 9, 11)}) == {"N": 3, "H": 9, "W": 11}
    with pytest.raises(AttnDeployError, match=r"input 'x': expected shape \(N, 64, H, W\)"):
        s.dims_from_shapes({"x": (3, 32, 9, 11)})
    with pytest.raises(AttnDeployError, match="rank 3"):
        s.dims_from_shapes({"x": (3, 64, 9)})
    with pytest.raises(AttnDeployError, match="no input"):
        s.dims_from_shapes({"y": (3, 64, 9, 9)})


def test_shared_symbols_must_agree_and_every_input_can_be_required():
    inputs = [InputSpec("a", ("N", 3, "H")), InputSpec("b", ("N", "L"))]
    assert dims_from_shapes(inputs, {"a": (2, 3, 5), "b": (2, 7)}, "w") == \
        {"N": 2, "H": 5, "L": 7}
    with pytest.raises(AttnDeployError, match="dim N is 4 but another input has N = 2"):
        dims_from_shapes(inputs, {"a": (2, 3, 5), "b": (4, 7)}, "w")
    with pytest.raises(AttnDeployError, match="give a shape for each input"):
        dims_from_shapes(inputs, {"a": (2, 3, 5)}, "w", require_all=True)


def test_shape_sets_give_sizes_per_set_and_name_the_option():
    """One text per shape set (``--shapes`` repeated; assert_parity's ``shapes=[...]``)."""
    inputs = [InputSpec("image", ("N", 3, "H", "W")), InputSpec("mask", ("N", "L"))]
    assert shapes_to_dims(inputs, ["image:1x3x97x61,mask:1x5", "mask:2x8,image:2x3x64x48"]) \
        == [{"N": 1, "H": 97, "W": 61, "L": 5}, {"N": 2, "H": 64, "W": 48, "L": 8}]
    assert shapes_to_dims(inputs, []) == []
    with pytest.raises(AttnDeployError, match=r"^--shapes 'image:1x4x9x9,mask:1x5': input "
                                              r"'image'.*axis 1 must be 3"):
        shapes_to_dims(inputs, ["image:1x3x9x9,mask:1x5", "image:1x4x9x9,mask:1x5"])
    with pytest.raises(AttnDeployError, match=r"^shapes 'image:1x3x9x9': give a shape for "
                                              r"each input"):
        shapes_to_dims(inputs, ["image:1x3x9x9"], "shapes")
    with pytest.raises(AttnDeployError, match="dim N is 2 but another input has N = 1"):
        shapes_to_dims(inputs, ["image:1x3x9x9,mask:2x5"])


@pytest.mark.parametrize("bad", ["H", "H=", "=3", "H=0", "H=-2", "H=x", "2=H"])
def test_symbol_ints_name_the_expected_form(bad):
    assert parse_symbol_ints(["H=32,W=48", "N=2"], "--dims") == {"H": 32, "W": 48, "N": 2}
    with pytest.raises(AttnDeployError, match=r"--dims .*expected SYMBOL=INT"):
        parse_symbol_ints([bad], "--dims")
