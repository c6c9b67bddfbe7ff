"""Golden outputs: saved by ``validate --save-outputs`` or the Python API, read back bit for bit,
and a file whose weight moved (or a wrong reference) fails against them."""
import json
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import attn_deploy as ad
from attn_deploy.cli import main
from attn_deploy.errors import AttnDeployError
from attn_deploy.harness.golden import load_outputs, save_outputs, validate_golden
from attn_deploy.testing import assert_file_parity

SHAPES = ["x:2x4x5x6,y:2x3", "x:3x4x7x5,y:3x3"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_class):
    """tiny.onnx (the conftest's two-input, two-output model) and perturbed.onnx: the same
    file with one convolution weight multiplied by 1.01."""
    torch.manual_seed(0)
    model = tiny_model_class().eval()
    d = tmp_path_factory.mktemp("golden")
    path = ad.export_onnx(model, (torch.randn(2, 4, 5, 6), torch.randn(2, 3)), d / "tiny.onnx",
                          input_names=["x", "y"], output_names=["out", "sum"],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}, "y": {0: "N"}})
    proto = onnx.load(str(path))
    (init,) = [i for i in proto.graph.initializer if numpy_helper.to_array(i).ndim == 4]
    w = numpy_helper.to_array(init).copy()
    w.flat[5] *= 1.01
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(proto, str(d / "perturbed.onnx"))
    return model, path, d / "perturbed.onnx"


def _shapes_args():
    return [a for s in SHAPES for a in ("--shapes", s)]


def test_cli_round_trip_and_a_perturbed_weight_fails(files, tmp_path, capsys):
    model, path, perturbed = files
    golden = tmp_path / "golden.npz"
    assert main(["validate", str(path), *_shapes_args(), "--runtimes", "onnx-reference",
                 "--save-outputs", str(golden)]) == 0
    assert "saved inputs and ort-cpu outputs at 2 shape(s)" in capsys.readouterr().out
    g = load_outputs(golden)
    assert [c[0] for c in g.cases] == SHAPES
    assert g.meta["reference"] == "ort-cpu" and g.meta["name"] == "tiny.onnx"
    assert g.meta["versions"]["onnxruntime"] and g.meta["versions"]["attn_deploy"]
    # the saved outputs are the model's: check them against PyTorch independently
    for _, feed, outs in g.cases:
        with torch.no_grad():
            ref = model(*(torch.from_numpy(feed[n]) for n in ("x", "y")))
        for name, r in zip(("out", "sum"), ref):
            np.testing.assert_allclose(outs[name], r.numpy(), rtol=1e-5, atol=1e-5)

    report = tmp_path / "r.json"
    assert main(["validate", str(path), "--load-outputs", str(golden), "--runtimes", "ort-cpu",
                 "onnx-reference", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["validations"][0]["rows"]
    assert [(r["runtime"], r["shapes"], r["status"]) for r in rows] == [
        (rt, s, "pass") for rt in ("ort-cpu", "onnx-reference") for s in SHAPES]
    capsys.readouterr()

    junit = tmp_path / "r.xml"
    assert main(["validate", str(perturbed), "--load-outputs", str(golden), "--runtimes",
                 "ort-cpu", "--json", str(report), "--junit-xml", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "out: FAIL" in out
    rows = json.loads(report.read_text())["validations"][0]["rows"]
    assert [r["status"] for r in rows] == ["fail", "fail"]
    # a 1 % change of one of 144 weights: far above fp32 rounding, well below a broken model
    assert all(1e-5 < r["errors"]["rel_l2"] < 1e-2 for r in rows)
    assert all(r["errors"]["outputs"][1]["passed"] for r in rows)  # x.sum(1) has no weight
    failures = list(ET.parse(junit).getroot().iter("failure"))
    assert len(failures) == 2 and all("out: FAIL" in f.get("message") for f in failures)


def test_block_golden_round_trip(tmp_path, capsys, absent_runtime):
    golden = tmp_path / "se.npz"
    # saved even when a required runtime is absent; exit 3 says what is missing
    assert main(["validate", "se", "--runtimes", "ort-cpu", "--require", absent_runtime,
                 "--save-outputs", str(golden)]) == 3
    assert "FAIL: a required runtime is absent" in capsys.readouterr().out
    assert load_outputs(golden).meta["reference"] == "torch-cpu"
    assert main(["validate", "se", "--runtimes", "ort-cpu", "--load-outputs",
                 str(golden)]) == 0
    # another block with an input named differently is refused as bad input
    assert main(["validate", "mha", "--runtimes", "ort-cpu", "--load-outputs",
                 str(golden)]) == 2
    assert "mha: inputs ['x', 'key_padding_mask'] differ from the golden outputs' inputs ['x']" \
        in capsys.readouterr().err


def test_python_api_same_format(files, tmp_path):
    model, path, perturbed = files
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((2, 4, 5, 6)).astype(np.float32),
            "y": rng.standard_normal((2, 3)).astype(np.float32)}
    with torch.no_grad():
        out, s = model(*(torch.from_numpy(a) for a in feed.values()))
    golden = save_outputs(tmp_path / "g.npz", [("x:2x4x5x6,y:2x3", feed,
                                                {"out": out.numpy(), "sum": s.numpy()})],
                          name="tiny", reference="torch-cpu")
    assert validate_golden(path, golden, runtimes=["ort-cpu"]).passed
    v = assert_file_parity(path, golden, runtimes=["ort-cpu", "onnx-reference"])
    assert [r.status for r in v.results] == ["pass", "pass"]
    with pytest.raises(AssertionError, match="(?s)parity failed.*out: FAIL.*worst at"):
        assert_file_parity(perturbed, str(golden), runtimes=["ort-cpu"])
    # a callable reference at given shapes: the model passes, a wrong function fails
    assert_file_parity(path, model, shapes=SHAPES, runtimes=["ort-cpu"])
    with pytest.raises(AssertionError, match="sum: FAIL"):
        assert_file_parity(path, lambda x, y: (model(x, y)[0], x.sum(1) * 1.001),
                           shapes=[{"x": (2, 4, 6, 6), "y": (2, 3)}], runtimes=["ort-cpu"])


def test_round_trip_is_exact_for_any_names_and_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    feed = {"a/b:0": rng.standard_normal((2, 3)).astype(np.float16),
            "ids": rng.integers(0, 9, (2, 5)), "mask": rng.random((2, 5)) < 0.5}
    outs = {"y.1": rng.standard_normal((2, 3)).astype(np.float32), "count": np.int32(7)}
    save_outputs(tmp_path / "g.npz", [("a", feed, outs), ("b", feed, outs)], name="n",
                 reference="ort-cpu")
    g = load_outputs(tmp_path / "g.npz")
    assert [c[0] for c in g.cases] == ["a", "b"]
    for _, f2, o2 in g.cases:
        for want, got in ((feed, f2), (outs, o2)):
            assert list(got) == list(want)
            for n in want:
                assert got[n].dtype == np.asarray(want[n]).dtype
                np.testing.assert_array_equal(got[n], want[n])


def test_bad_golden_files_are_clear_errors(files, tmp_path):
    _, path, _ = files
    with pytest.raises(AttnDeployError, match="no such file"):
        load_outputs(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(AttnDeployError, match="not an attn_deploy golden outputs file"):
        load_outputs(tmp_path / "text.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(AttnDeployError, match="not an attn_deploy golden outputs file"):
        load_outputs(tmp_path / "plain.npz")
    np.savez(tmp_path / "other.npz", meta=np.array(json.dumps({"format": "polygraphy"})))
    with pytest.raises(AttnDeployError, match="format 'polygraphy'"):
        load_outputs(tmp_path / "other.npz")
    with pytest.raises(AttnDeployError, match="nothing to save"):
        save_outputs(tmp_path / "empty.npz", [], name="n", reference="ort-cpu")
    g = save_outputs(tmp_path / "g.npz", [("s", {"z": np.zeros(2, np.float32)},
                                           {"o": np.zeros(2, np.float32)})],
                     name="other", reference="ort-cpu")
    with pytest.raises(AttnDeployError, match=r"inputs \['x', 'y'\] differ"):
        validate_golden(path, g)
    (tmp_path / "broken.onnx").write_bytes(path.read_bytes()[:100])  # a truncated file
    with pytest.raises(AttnDeployError, match="broken.onnx"):
        validate_golden(tmp_path / "broken.onnx", g)
