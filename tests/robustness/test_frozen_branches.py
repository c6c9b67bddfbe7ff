"""Export refuses what it froze: a dynamic dim that a size-dependent branch constrained is
named with the source line (the exporter's recorded guards), and a file that is wrong at a second
shape is refused by running it there on ONNX Runtime against eager."""
import inspect

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import attn_deploy as ad
from attn_deploy.cli import main
from attn_deploy.export.second_shape import second_dims

DYNAMIC = {"x": {0: "N", 2: "H", 3: "W"}}


def _branch_line(cls) -> str:
    src, start = inspect.getsourcelines(cls.forward)
    line = next(i for i, text in enumerate(src) if "the frozen branch" in text)
    return f"robustness_models.py:{start + line}"


def _export(model, path, x, **kw):
    return ad.export_onnx(model, x, path, input_names=["x"], output_names=["y"],
                          dynamic_axes=DYNAMIC, **kw)


def test_fpn_style_branch_is_refused_with_the_line_and_a_multiple_hint(models, tmp_path):
    out = tmp_path / "fpn.onnx"
    out.write_bytes(b"previous good file")
    with pytest.raises(ad.AttnDeployError) as err:
        _export(models.frozen_branch(), out, torch.randn(2, 3, 8, 10))
    text = str(err.value)
    assert "frozen" in text and "H" in text and "W" in text
    assert _branch_line(models.FrozenBranch) in text          # the `if` on sizes
    assert "--multiple H=2,W=2" in text and "H=64,W=64" in text
    assert out.read_bytes() == b"previous good file"            # nothing replaced
    assert (tmp_path / "fpn.failed.onnx").is_file() and "fpn.failed.onnx" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fpn.failed.onnx", "fpn.onnx"]


def test_declaring_the_multiple_exports_a_file_right_at_other_even_sizes(models, tmp_path):
    model = models.frozen_branch()
    path = _export(model, tmp_path / "fpn.onnx", torch.randn(2, 3, 8, 10),
                   multiples={"H": 2, "W": 2})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 14, 6)
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls, words", [
    ("LimitedBranch", ["H was limited to 17.."]),
    ("SquareBranch", ["Ne(H, W)", "false at H="]),
])
def test_range_and_aspect_branches_are_refused(models, tmp_path, cls, words):
    with pytest.raises(ad.AttnDeployError) as err:
        _export(getattr(models, cls)(), tmp_path / "m.onnx", torch.randn(2, 3, 20, 24))
    text = str(err.value)
    assert all(w in text for w in words), text
    assert _branch_line(getattr(models, cls)) in text
    assert not (tmp_path / "m.onnx").exists()


class _Pool3(nn.Module):
    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 3)


@pytest.mark.parametrize("make, words", [
    (lambda m: m.frozen_branch(), "fails on ONNX Runtime at a second shape x:3x3x9x11"),
    # the dynamo exporter sizes adaptive pooling's kernel for the example (DESIGN.md)
    (lambda m: _Pool3(), "different numbers from PyTorch at a second shape x:3x3x9x11"),
])
def test_a_file_wrong_at_a_second_shape_is_refused_by_running_it(models, tmp_path, monkeypatch,
                                                                  make, words):
    # the recorded guards catch both models; without them, the run on ONNX Runtime must
    import attn_deploy.export.onnx_export as onnx_export
    monkeypatch.setattr(onnx_export, "check_exported_dims", lambda *a, **k: None)
    with pytest.raises(ad.AttnDeployError, match=words):
        _export(make(models), tmp_path / "m.onnx", torch.randn(2, 3, 8, 10))
    assert not (tmp_path / "m.onnx").exists() and (tmp_path / "m.failed.onnx").exists()


def test_guards_also_catch_a_pooling_kernel_sized_for_the_example(tmp_path):
    with pytest.raises(ad.AttnDeployError, match=r"Eq\(Mod\(H, 3\), 0\)"):
        _export(_Pool3(), tmp_path / "pool.onnx", torch.randn(2, 3, 12, 18))


def test_second_dims_flip_parity_and_aspect_within_bounds():
    alt = second_dims({"N": 2, "H": 20, "W": 20}, {}, {}, {})
    assert all(alt[s] % 2 != d % 2 for s, d in {"N": 2, "H": 20, "W": 20}.items())
    assert alt["H"] * 20 != alt["W"] * 20                   # a square example becomes oblong
    alt = second_dims({"H": 64, "W": 32}, {"H": 32, "W": 32}, {}, {"H": 96})
    assert alt["H"] % 32 == 0 and (alt["H"] // 32) % 2 == 1 and alt["H"] <= 96
    assert alt["H"] * 32 != alt["W"] * 64
    with pytest.raises(ad.AttnDeployError, match="no second size"):
        second_dims({"L": 4}, {}, {"L": 4}, {"L": 4})


def test_cli_refuses_with_exit_2_and_suggests_the_multiple(models, tmp_path, capsys):
    code = main(["export", "--model", "robustness_models:frozen_branch", "--input",
                 "x:2x3x8x10", "--dynamic", "x:0=N,2=H,3=W", "-o", str(tmp_path / "f.onnx"),
                 "--runtimes", "ort-cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "--multiple H=2,W=2" in err and not (tmp_path / "f.onnx").exists()
    code = main(["export", "--model", "robustness_models:frozen_branch", "--input",
                 "x:2x3x8x10", "--dynamic", "x:0=N,2=H,3=W", "--multiple", "H=2,W=2",
                 "-o", str(tmp_path / "f.onnx"), "--runtimes", "ort-cpu"])
    assert code == 0, capsys.readouterr()
