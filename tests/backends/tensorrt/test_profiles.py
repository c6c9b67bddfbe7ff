"""Optimization profiles from the block spec and from --min/--opt/--max."""
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError
from attn_deploy.backends.tensorrt.profiles import profile_for_model, symbol_ranges


def _dynamic_model():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 16, "H", "W"])
    return h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x],
                                     [h.make_tensor_value_info("y", T.FLOAT, None)]),
                        opset_imports=[h.make_opsetid("", 18)])


def test_block_spec_gives_ranges_that_cover_the_harness_shapes(tmp_path):
    for key in ("se", "carafe", "mha"):
        s = ad.spec(key)
        ranges = symbol_ranges(s)
        for symbol, (lo, opt, hi) in ranges.items():
            assert lo <= opt <= hi
            m = s.multiples.get(symbol, 1)
            assert lo % m == 0 and hi % m == 0 and opt == s.dims[symbol]
            assert lo <= s.alternate_dims()[symbol] <= hi, (key, symbol)
    path = ad.export_block("se", tmp_path / "se.onnx")
    import onnx
    profile = profile_for_model(onnx.load(path))
    (name, (lo, opt, hi)), = profile.items()
    s = ad.spec("se")
    assert opt == tuple(s.shapes()[name]) and lo[1] == opt[1] == hi[1]


def test_explicit_shapes_win_and_are_validated():
    model = _dynamic_model()
    profile = profile_for_model(model, min_shapes={"x": (1, 16, 4, 4)},
                                opt_shapes={"x": (2, 16, 8, 8)}, max_shapes={"x": (4, 16, 32, 32)})
    assert profile == {"x": ((1, 16, 4, 4), (2, 16, 8, 8), (4, 16, 32, 32))}
    with pytest.raises(AttnDeployError, match="dynamic .* no min shape"):
        profile_for_model(model, opt_shapes={"x": (2, 16, 8, 8)}, max_shapes={"x": (4, 16, 32, 32)})
    with pytest.raises(AttnDeployError, match="axis 1 is fixed at 16"):
        profile_for_model(model, min_shapes={"x": (1, 8, 4, 4)}, opt_shapes={"x": (2, 16, 8, 8)},
                          max_shapes={"x": (4, 16, 32, 32)})
    with pytest.raises(AttnDeployError, match="min <= opt <= max"):
        profile_for_model(model, min_shapes={"x": (4, 16, 4, 4)}, opt_shapes={"x": (2, 16, 8, 8)},
                          max_shapes={"x": (4, 16, 32, 32)})
    with pytest.raises(AttnDeployError, match="not inputs of the model"):
        profile_for_model(model, min_shapes={"y": (1,)})
