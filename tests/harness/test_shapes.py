"""trtexec-style shape arguments and their mapping onto spec symbols."""
import pytest

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.shapes import dims_from_shapes, format_shapes, parse_shapes


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
    assert dims_from_shapes(s, {"x": (3, 64, 9, 11)}) == {"N": 3, "H": 9, "W": 11}
    with pytest.raises(AttnDeployError, match=r"input 'x': expected shape \(N, 64, H, W\)"):
        dims_from_shapes(s, {"x": (3, 32, 9, 11)})
    with pytest.raises(AttnDeployError, match="rank 3"):
        dims_from_shapes(s, {"x": (3, 64, 9)})
    with pytest.raises(AttnDeployError, match="no input"):
        dims_from_shapes(s, {"y": (3, 64, 9, 9)})
