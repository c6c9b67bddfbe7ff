"""No false PASS: NaN/Inf fail unless allowed, an all-NaN or all-zero reference is a degenerate
test, a failed validation never replaces the previous file, output names match the outputs, and
deployable() refuses a look-alike layer whose maths differ."""
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import attn_deploy as ad
from attn_deploy.cli import main
from attn_deploy.harness.compare import compare


def _ref(shape=(3, 4)):
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("side", ["output", "reference", "both"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_any_non_finite_value_fails_and_is_counted_per_side(side, bad):
    ref, out = _ref(), _ref()
    out = ref.copy()
    if side in ("output", "both"):
        out[0, 1] = bad
    if side in ("reference", "both"):
        ref[0, 1] = bad
    c = compare({"y": out}, {"y": ref}, rtol=1.0)
    kind = "NaN" if np.isnan(bad) else "Inf"
    n_out, n_ref = int(side != "reference"), int(side != "output")
    assert not c and c.status == "fail"
    assert f"output {n_out if kind == 'NaN' else 0} NaN, {n_out if kind == 'Inf' else 0} Inf" \
        in str(c)
    assert f"reference {n_ref if kind == 'NaN' else 0} NaN, {n_ref if kind == 'Inf' else 0} Inf" \
        in str(c)
    # allowed explicitly: passes only where both sides agree on the non-finite values
    assert bool(compare({"y": out}, {"y": ref}, allow_nonfinite=True)) == (side == "both")


@pytest.mark.parametrize("fill", [np.nan, 0.0])
def test_all_nan_or_all_zero_reference_is_degenerate_even_when_outputs_agree(fill):
    ref = np.full((2, 5), fill, np.float32)
    for allow in (False, True):
        c = compare({"y": ref.copy()}, {"y": ref}, allow_nonfinite=allow)
        assert not c and c.degenerate and c.status == "degenerate"
        assert "DEGENERATE" in str(c) and "PASS" not in str(c)
    # a degenerate output next to a failing one reports the failure
    c = compare({"y": ref.copy(), "z": _ref() + 1}, {"y": ref, "z": _ref()})
    assert c.status == "fail"


def _nan_model(path):
    """y = (x - x) / (x - x): NaN everywhere, on every runtime."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Sub", ["x", "x"], ["d"]), helper.make_node("Div", ["d", "d"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "nan", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))


def test_validate_file_whose_outputs_are_all_nan_is_not_a_pass(tmp_path, capsys):
    _nan_model(tmp_path / "nan.onnx")
    code = main(["validate", str(tmp_path / "nan.onnx"), "--shapes", "x:2x4",
                 "--runtimes", "ort-cpu", "onnx-reference"])
    text = capsys.readouterr().out
    assert code == 1 and "degenerate" in text and "8 NaN" in text
    assert text.strip().splitlines()[-1] == "FAIL"


def test_nan_checkpoint_fails_and_the_previous_file_survives(models, tmp_path, capsys):
    out = tmp_path / "net.onnx"
    good = tmp_path / "good.pt"
    torch.save(models.small_conv().state_dict(), good)
    args = ["export", "--model", "robustness_models:small_conv", "--input", "x:2x4x6x7",
            "--dynamic", "x:0=N,2=H,3=W", "-o", str(out), "--runtimes", "ort-cpu"]
    assert main(args + ["--checkpoint", str(good)]) == 0
    before = out.read_bytes()
    state = models.small_conv().state_dict()
    state["conv.weight"] = torch.full_like(state["conv.weight"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    capsys.readouterr()
    code = main(args + ["--checkpoint", str(tmp_path / "nan.pt")])
    text = capsys.readouterr().out
    assert code == 1 and "PASS" not in text.splitlines()[-1]
    assert "NaN" in text and "net.failed.onnx" in text and "left as it was" in text
    assert out.read_bytes() == before                            # the file that worked
    failed = onnx.load(str(tmp_path / "net.failed.onnx"))
    assert np.isnan(onnx.numpy_helper.to_array(failed.graph.initializer[0])).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["good.pt", "nan.pt", "net.failed.onnx", "net.onnx"]    # no temp file left


def test_recipe_whose_validation_fails_keeps_the_previous_file(models, tmp_path):
    from attn_deploy.deploy.pipeline import run_recipe
    from attn_deploy.deploy.recipe import load_recipe

    out = tmp_path / "zero.onnx"
    out.write_bytes(b"previous model")
    recipe = tmp_path / "zero.toml"
    recipe.write_text(f'''
[model]
factory = "robustness_models:zero_output"
[inputs]
x = ["N", 4, "H", "W"]
[export]
output = "{out}"
dims = {{ N = 2, H = 6, W = 5 }}
[validate]
shapes = [{{ N = 2, H = 6, W = 5 }}, {{ N = 3, H = 7, W = 9 }}]
runtimes = ["ort-cpu"]
''')
    result = run_recipe(load_recipe(recipe))
    assert not result.passed and result.validation.runtime_status("ort-cpu") == "degenerate"
    assert out.read_bytes() == b"previous model"
    assert result.failed_path == tmp_path / "zero.failed.onnx" and result.failed_path.is_file()


def test_output_names_must_match_the_outputs_in_number(tiny_model, tmp_path):
    x, y = torch.randn(2, 4, 5, 6), torch.randn(2, 3)
    for names in (["a"], ["a", "b", "c"]):
        with pytest.raises(ad.AttnDeployError, match=f"{len(names)} names .* returns 2"):
            ad.export_onnx(tiny_model, (x, y), tmp_path / "t.onnx", input_names=["x", "y"],
                           output_names=names)
    assert not list(tmp_path.iterdir())


class _NoMaskCrissCross(nn.Module):
    """mmcv's CrissCrossAttention layout with another forward: the pixel itself is counted
    twice (no -inf diagonal mask), so block cca would compute something else."""

    def __init__(self, c=16):
        super().__init__()
        self.query_conv, self.key_conv = nn.Conv2d(c, c // 8, 1), nn.Conv2d(c, c // 8, 1)
        self.value_conv = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.full((1,), 0.7))

    def forward(self, x):
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        e_h = torch.einsum("bchw,bciw->bhwi", q, k)
        e_w = torch.einsum("bchw,bchj->bhwj", q, k)
        a = torch.softmax(torch.cat([e_h, e_w], -1), -1)
        h = x.shape[2]
        out = torch.einsum("bciw,bhwi->bchw", v, a[..., :h]) + \
            torch.einsum("bchj,bhwj->bchw", v, a[..., h:])
        return self.gamma * out + x


def test_deployable_refuses_a_lookalike_it_cannot_reproduce_and_names_it():
    net = nn.Sequential(nn.Conv2d(3, 16, 1), _NoMaskCrissCross(16)).eval()
    swapped, report = ad.deployable(net)
    assert len(report) == 0 and type(swapped[1]) is _NoMaskCrissCross
    skip = report.skipped[0]
    assert skip.path == "1" and "computes something else" in skip.reason
    assert "relative L2 error" in skip.reason and "kept 1: _NoMaskCrissCross" in str(report)
    x = torch.randn(2, 3, 6, 9)
    with torch.no_grad():
        torch.testing.assert_close(swapped(x), net(x))
