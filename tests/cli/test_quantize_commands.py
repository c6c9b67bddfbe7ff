"""``attn-deploy quantize`` and ``validate --precision int8``, run in-process."""
import subprocess
import sys

import numpy as np
import onnx

from attn_deploy.cli import main


def test_quantize_validate_and_bad_calibration(tmp_path, capsys):
    f32, i8 = tmp_path / "se.onnx", tmp_path / "se.int8.onnx"
    assert main(["export", "se", "-o", str(f32)]) == 0
    # a block file: seeded calibration, held-out accuracy at two shapes
    assert main(["quantize", str(f32), "-o", str(i8), "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 node(s) in int8" in out and "3 sample(s)" in out
    assert out.count("SQNR") == 2 and out.rstrip().endswith("PASS")
    assert main(["validate", str(i8), "--precision", "int8", "--reference", str(f32),
                 "--runtimes", "ort-cpu", "onnx-reference"]) == 0
    out = capsys.readouterr().out
    assert "SQNR dB" in out and out.count("pass") == 4 and "PASS" in out
    assert main(["validate", str(i8), "--precision", "int8"]) == 2
    assert "--reference" in capsys.readouterr().err

    # user data: a folder of .npy samples (one input), held out from another folder
    calib, hold = tmp_path / "calib", tmp_path / "hold"
    calib.mkdir(), hold.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(calib / f"{i}.npy", rng.standard_normal((1, 64, 9, 9)).astype(np.float32))
    np.save(hold / "h.npy", rng.standard_normal((2, 64, 5, 7)).astype(np.float32))
    mine = tmp_path / "mine.int8.onnx"
    assert main(["quantize", str(f32), "-o", str(mine), "--calibration", str(calib),
                 "--holdout", str(hold), "--method", "percentile"]) == 0
    out = capsys.readouterr().out
    assert "calibrated (percentile) on 3 sample(s)" in out and "x:2x64x5x7" in out
    meta = {p.key: p.value for p in onnx.load(str(mine)).metadata_props}
    assert meta["attn_deploy_precision"] == "int8" and meta["attn_deploy_block"] == "se"

    # the runtime side (no PyTorch): quantize user data, validate and trt-check an int8 file
    no_torch = ("import sys; sys.modules['torch'] = None\n"
                "from attn_deploy.cli import main; sys.exit(main(sys.argv[1:]))")
    for args in (["quantize", f32, "-o", tmp_path / "rt.int8.onnx", "--calibration", calib,
                  "--holdout", hold],
                 ["validate", tmp_path / "rt.int8.onnx", "--precision", "int8", "--reference",
                  f32, "--runtimes", "ort-cpu"],
                 ["trt-check", tmp_path / "rt.int8.onnx"]):
        run = subprocess.run([sys.executable, "-c", no_torch, *map(str, args)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "PASS" in run.stdout

    # bad calibration data: exit 2 with the input named, nothing written
    np.save(calib / "3.npy", rng.standard_normal((1, 64, 9, 9)))  # float64
    bad = tmp_path / "bad.int8.onnx"
    assert main(["quantize", str(f32), "-o", str(bad), "--calibration", str(calib)]) == 2
    err = capsys.readouterr().err
    assert "'3.npy': input 'x': expected dtype float32" in err and "float64" in err
    assert not bad.exists()
    assert main(["quantize", str(tmp_path / "none.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_validate_block_int8(tmp_path, capsys):
    assert main(["validate", "eca", "--precision", "int8", "--runtimes", "ort-cpu",
                 "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "node(s) in int8" in out and "SQNR dB" in out and out.count("pass") == 2
    assert (tmp_path / "eca.int8.onnx").exists()


def test_quantize_reads_the_block_through_the_registry(tmp_path, capsys):
    """The block a file came from (calibration and held-out inputs) is what the registry reads
    back; a file naming a block this version lacks is refused with the file named."""
    f32 = tmp_path / "se.onnx"
    assert main(["export", "se", "-o", str(f32)]) == 0
    capsys.readouterr()
    proto = onnx.load(str(f32))
    next(p for p in proto.metadata_props if p.key == "attn_deploy_block").value = "se_v9"
    onnx.save(proto, str(f32))
    assert main(["quantize", str(f32), "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err
    assert f"{f32}: exported from block 'se_v9'" in err and "known blocks:" in err
    assert not (tmp_path / "q.onnx").exists()
