"""--input / --dynamic / --multiple syntax, and sizes per symbol."""
import pytest
import torch

from attn_deploy.deploy.input_args import inputs_from_args, parse_dynamic, parse_input
from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import InputSpec, alternate_dims, check_dims, parse_symbol_ints


def test_inputs_and_dynamic_axes_combine_into_templates():
    specs, dims = inputs_from_args(["image:2x3x64x48", "ids:2x7:int64"],
                                   ["image:0=N,2=H", "image:-1=W", "ids:0=N"])
    assert specs == [InputSpec("image", ("N", 3, "H", "W")),
                     InputSpec("ids", ("N", 7), torch.int64)]
    assert dims == {"N": 2, "H": 64, "W": 48}
    assert parse_input("x:1x8") == ("x", (1, 8), torch.float32)
    assert parse_dynamic("x:0=N,1=L") == ("x", {0: "N", 1: "L"})
    assert parse_symbol_ints(["H=32,W=16"], "--multiple") == {"H": 32, "W": 16}


@pytest.mark.parametrize("inputs,dynamic,words", [
    ([], None, "at least one --input"),
    (["image"], None, "expected NAME:D0xD1x"),
    (["image:2x3xAx4"], None, "integers separated by 'x'"),
    (["image:2x0x4"], None, "sizes must be >= 1"),
    (["image:2x3:float8"], None, "dtype 'float8' is not one of"),
    (["x:2x3", "x:2x3"], None, r"\['x'\] given more than once"),
    (["x:2x3"], ["y:0=N"], "no input named 'y'"),
    (["x:2x3"], ["x:"], "expected NAME:AXIS=SYMBOL"),
    (["x:2x3"], ["x:N"], "is not AXIS=SYMBOL"),
    (["x:2x3"], ["x:0=2N"], "is not AXIS=SYMBOL"),
    (["x:2x3"], ["x:a=N"], "is not AXIS=SYMBOL"),
    (["x:2x3"], ["x:5=N"], "axis 5 is out of range"),
    (["x:2x3", "y:4x3"], ["x:0=N", "y:0=N"], "must have the same example size"),
])
def test_bad_syntax_is_explained(inputs, dynamic, words):
    with pytest.raises(AttnDeployError, match=words):
        inputs_from_args(inputs, dynamic)


def test_dims_checks_and_alternates():
    specs = [InputSpec("x", ("N", 3, "H"))]
    assert check_dims(specs, {"N": 2, "H": 16}, "w", {"H": 8}) == {"N": 2, "H": 16}
    with pytest.raises(AttnDeployError, match="multiple of 8"):
        check_dims(specs, {"N": 2, "H": 12}, "w", {"H": 8})
    with pytest.raises(AttnDeployError, match=r"missing \['H'\], unknown \['W'\]"):
        check_dims(specs, {"N": 2, "W": 3}, "w")
    # the other parity of size / multiple, and N:H changes ratio (24 would keep 2:16 = 3:24)
    assert alternate_dims({"N": 2, "H": 16}, {"H": 8}) == {"N": 3, "H": 40}
    assert alternate_dims({"N": 2}, max_dims={"N": 3}) == {"N": 3}
    with pytest.raises(AttnDeployError, match="multiple"):
        parse_symbol_ints(["H=0"], "--multiple")
