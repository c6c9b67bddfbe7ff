"""export_onnx / export_block: dynamic axes proven, metadata, checker, atomic writes."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import attn_deploy as ad
from attn_deploy.errors import AttnDeployError


def _dims(path, name):
    vi = {i.name: i for i in onnx.load(str(path)).graph.input}[name]
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_export_any_model_with_shared_symbols(tiny_model, tmp_path):
    x, y = torch.randn(3, 4, 6, 7), torch.randn(3, 5)
    p = ad.export_onnx(tiny_model, (x, y), tmp_path / "m.onnx", input_names=["x", "y"],
                       output_names=["a", "b"],
                       dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}, "y": {0: "N"}})
    assert _dims(p, "x") == ["N", 4, "H", "W"] and _dims(p, "y") == ["N", 5]
    sess = ort.InferenceSession(str(p))
    for shape in [(2, 4, 9, 5), (5, 4, 3, 11)]:
        x2, y2 = torch.randn(*shape), torch.randn(shape[0], 5)
        a, b = sess.run(None, {"x": x2.numpy(), "y": y2.numpy()})
        ra, rb = tiny_model(x2, y2)
        np.testing.assert_allclose(a, ra.detach().numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b, rb.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_pinned_dim_is_an_error_not_a_silent_static_model(tmp_path):
    class Reshapes(torch.nn.Module):  # ties H to a constant: H cannot stay dynamic
        def forward(self, x):
            return x.reshape(x.shape[0], 4, 8) * 2

    x = torch.randn(2, 4, 8)
    with pytest.raises(AttnDeployError, match="not dynamic"):
        ad.export_onnx(Reshapes(), (x,), tmp_path / "r.onnx", input_names=["x"],
                       output_names=["y"], dynamic_axes={"x": {0: "N", 2: "L"}})
    assert not list(tmp_path.iterdir()), "a failed export must leave no file"


def test_failed_export_keeps_the_previous_file(tmp_path):
    good = tmp_path / "se.onnx"
    ad.export_block("se", good)
    before = good.read_bytes()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(AttnDeployError, match="boom"):
        ad.export_onnx(Broken(), (torch.randn(2, 3),), good, input_names=["x"],
                       output_names=["y"])
    assert good.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["se.onnx"], "no temp files left behind"


def test_unwritable_path_is_a_clear_error(tmp_path):
    with pytest.raises(AttnDeployError, match="does not exist"):
        ad.export_block("se", tmp_path / "missing" / "se.onnx")
    folder = tmp_path / "taken"
    (folder / "inside").mkdir(parents=True)  # the path is a non-empty folder: rename fails
    with pytest.raises(AttnDeployError, match="cannot write"):
        ad.export_block("se", folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits
            pytest.skip("running as root: permission bits are not enforced")
        with pytest.raises(AttnDeployError, match="cannot write"):
            ad.export_block("se", ro / "se.onnx")
    finally:
        ro.chmod(0o700)


def test_export_block_metadata_checker_and_static(tmp_path):
    m = ad.create("se", channels=32)
    p = ad.export_block("se", tmp_path / "se.onnx", model=m)
    proto = onnx.load(str(p))
    onnx.checker.check_model(proto, full_check=True)
    meta = {q.key: q.value for q in proto.metadata_props}
    assert meta["attn_deploy_block"] == "se" and '"channels": 32' in meta["attn_deploy_config"]
    assert proto.opset_import[0].version == 18
    assert _dims(p, "x") == ["N", 32, "H", "W"]
    ps = ad.export_block("se", tmp_path / "s.onnx", model=m, static=True, H=8, W=8)
    assert _dims(ps, "x") == [2, 32, 8, 8]


def test_bad_arguments_are_named(tiny_model, tmp_path):
    x, y = torch.randn(2, 4, 5, 5), torch.randn(2, 5)
    with pytest.raises(AttnDeployError, match="input_names"):
        ad.export_onnx(tiny_model, (x, y), tmp_path / "a.onnx", input_names=["x"],
                       output_names=["a", "b"])
    with pytest.raises(AttnDeployError, match="opset"):
        ad.export_onnx(tiny_model, (x, y), tmp_path / "a.onnx", input_names=["x", "y"],
                       output_names=["a", "b"], opset=11)
    with pytest.raises(AttnDeployError, match="not inputs"):
        ad.export_onnx(tiny_model, (x, y), tmp_path / "a.onnx", input_names=["x", "y"],
                       output_names=["a", "b"], dynamic_axes={"z": {0: "N"}})
    with pytest.raises(AttnDeployError, match="out of range"):
        ad.export_onnx(tiny_model, (x, y), tmp_path / "a.onnx", input_names=["x", "y"],
                       output_names=["a", "b"], dynamic_axes={"y": {4: "N"}})
    with pytest.raises(AttnDeployError, match="created as block"):
        ad.export_block("cbam", tmp_path / "c.onnx", model=ad.create("se"))


def test_written_files_get_the_usual_mode_and_keep_a_replaced_files_mode(tmp_path):
    from attn_deploy.atomic_write import atomic_write_text
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
        assert p.stat().st_mode & 0o777 == 0o644  # readable by a server running as another user
        p.chmod(0o600)
        atomic_write_text(p, "y")
        assert p.stat().st_mode & 0o777 == 0o600 and p.read_text() == "y"
    finally:
        os.umask(old)


def test_export_restores_the_training_flag(tiny_model, tmp_path):
    tiny_model.train()
    ad.export_onnx(tiny_model, (torch.randn(2, 4, 5, 5), torch.randn(2, 5)),
                   tmp_path / "t.onnx", input_names=["x", "y"], output_names=["a", "b"])
    assert tiny_model.training
