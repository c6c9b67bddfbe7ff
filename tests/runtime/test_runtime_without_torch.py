"""The runtime side without PyTorch: ``pip install "attn_deploy[runtime]"`` gives validate on ONNX
files, build-engine, trt-check, triton-repo, plugins-path and the runner API, and importing it
never imports torch.

Two checks: the runtime commands in a process where ``import torch`` fails (fast), and the real
thing, a fresh virtualenv with the runtime install and no torch at all (slow, needs PyPI)."""
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import attn_deploy as ad

ROOT = Path(__file__).resolve().parents[2]
NO_TORCH = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from attn_deploy.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    return {key: ad.export_block(key, folder / f"{key}.onnx") for key in ("cca", "se")}


def _run(args, python=sys.executable, code=NO_TORCH, cwd=None):
    return subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**os.environ, "PYTHONPATH": ""})


def test_runtime_commands_run_where_torch_cannot_be_imported(files, tmp_path):
    run = _run(["validate", files["cca"], "--runtimes", "ort-cpu", "onnx-reference"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("pass") == 2 and "PASS" in run.stdout  # the recorded shapes, no spec
    run = _run(["trt-check", files["cca"], "--tensorrt", "10.3"])
    assert run.returncode == 0 and "as their local functions" in run.stdout, run.stderr
    (tmp_path / "models").mkdir()
    run = _run(["triton-repo", files["se"], "-o", tmp_path / "models"])
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "models" / "se" / "config.pbtxt").is_file()
    run = _run(["build-engine", files["se"]])
    assert run.returncode == 2 and "TensorRT is unavailable" in run.stderr
    assert "Traceback" not in run.stderr
    run = _run(["plugins-path"])
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr
    # A block key needs the export side, and says so instead of failing on the import.
    run = _run(["validate", "se"])
    assert run.returncode != 0 and "torch" in (run.stdout + run.stderr).lower()


def test_jetson_smoke_test_runs_without_torch(tmp_path):
    script = ROOT / "docker" / "smoke_runtime.py"
    bin_dir = Path(sys.executable).parent  # attn-deploy of this environment, torch blocked
    wrapper = tmp_path / "attn-deploy"
    wrapper.write_text(f"#!{sys.executable}\n{NO_TORCH}\n")
    wrapper.chmod(0o755)
    run = subprocess.run([sys.executable, str(script), "ort-cpu", "onnx-reference"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{tmp_path}:{bin_dir}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("pass") == 2 and "TensorRT 10.3: PASS" in run.stdout  # ort-cpu: reference


def test_runner_api_imports_no_torch(files):
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from attn_deploy.backends import onnx_runner, availability\n"
            "import attn_deploy.backends.tensorrt.runner, attn_deploy.trt_check\n"
            "with onnx_runner('ort-cpu', sys.argv[1]) as r:\n"
            "    y = r.infer({'x': np.ones((1, 64, 8, 8), np.float32)})\n"
            "print(sorted(y), availability('torch-cpu')[0], availability('tensorrt')[0])\n")
    run = subprocess.run([sys.executable, "-c", code, str(files["se"])], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["['y']", "False", "False"]


@pytest.mark.slow
def test_runtime_install_in_a_virtualenv_without_torch(files, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", f"{ROOT}[runtime]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0, "the runtime install must not bring torch"
    cli = [str(env_dir / "bin" / "attn-deploy")]
    run = subprocess.run(cli + ["validate", str(files["cca"]), "--runtimes", "ort-cpu",
                                "onnx-reference"], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert run.returncode == 0 and "PASS" in run.stdout, run.stdout + run.stderr
    run = subprocess.run(cli + ["trt-check", str(files["cca"])], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
