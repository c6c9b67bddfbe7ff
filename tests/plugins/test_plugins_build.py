"""Builds plugins/ with CMake into a temporary folder and runs its CTest host tests.

The quick test builds the CUDA kernels for one architecture; with TensorRT headers it also builds
the plugins and libattn_deploy_plugins.so and runs the IPluginV3 host tests. TensorRT headers are
taken from $TensorRT_INCLUDE_DIR (several folders separated by ':'), else from third_party/trt-*
in the checkout; without them the TensorRT part is skipped with the reason. The slow tests build
every header version found, a build without TensorRT, and the kernels for every release
architecture (75 to 90).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"


def _tool(name):
    return shutil.which(name)


def _header_dirs() -> list[Path]:
    env = os.environ.get("TensorRT_INCLUDE_DIR")
    dirs = [Path(p) for p in env.split(os.pathsep) if p] if env else \
        sorted(ROOT.glob("third_party/trt-*/include"))
    return [d for d in dirs if (d / "NvInferRuntime.h").is_file()]


pytestmark = pytest.mark.skipif(
    not (_tool("cmake") and (_tool("c++") or _tool("g++"))),
    reason="cmake or a C++ compiler is missing")


def _configure(build_dir: Path, *options: str) -> str:
    generator = ["-G", "Ninja"] if _tool("ninja") else []
    configure = subprocess.run(["cmake", "-S", str(PLUGINS), "-B", str(build_dir), *generator,
                                "-DCMAKE_BUILD_TYPE=Release", *options],
                               capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    return configure.stdout


def _compile(build_dir: Path, target: str | None = None) -> None:
    cmd = ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]
    build = subprocess.run(cmd + (["--target", target] if target else []),
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-6000:]


def _build(build_dir: Path, *options: str) -> str:
    summary = _configure(build_dir, *options)
    _compile(build_dir)
    return summary


def _ctest(build_dir: Path) -> str:
    run = subprocess.run(["ctest", "--test-dir", str(build_dir), "--output-on-failure"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    return run.stdout


def _one_arch() -> list[str]:
    return ["-DCMAKE_CUDA_ARCHITECTURES=75"]


def test_plugins_build_and_host_tests(tmp_path):
    headers = _header_dirs()
    options = _one_arch() + ([f"-DTensorRT_INCLUDE_DIR={headers[-1]}"] if headers else [])
    configure = _build(tmp_path / "build", *options)
    out = _ctest(tmp_path / "build")
    assert "plugin_core" in out
    have_cuda = "kernels=ON" in configure
    if not headers:
        pytest.skip("TensorRT headers not found ($TensorRT_INCLUDE_DIR or third_party/trt-*): "
                    "built and tested the TensorRT-free core only")
    if not have_cuda:
        pytest.skip("no CUDA compiler: the TensorRT plugins need the kernels")
    for name in ("tensorrt_plugins", "library_exports", "library_links"):
        assert name in out, out
    assert (tmp_path / "build" / "lib" / "libattn_deploy_plugins.so").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["none", "oldest", "newest"])
def test_plugins_build_per_header_version(tmp_path, which):
    headers = _header_dirs()
    if which != "none" and not headers:
        pytest.skip("TensorRT headers not found ($TensorRT_INCLUDE_DIR or third_party/trt-*)")
    if which == "newest" and len(headers) < 2:
        pytest.skip("only one TensorRT header version available")
    options = _one_arch()
    if which != "none":
        options.append(f"-DTensorRT_INCLUDE_DIR={headers[0 if which == 'oldest' else -1]}")
    configure = _build(tmp_path / "build", *options)
    assert ("tensorrt_plugins=ON" in configure) == (which != "none" and "kernels=ON" in configure)
    _ctest(tmp_path / "build")


@pytest.mark.slow
def test_kernels_compile_for_every_release_architecture(tmp_path):
    if not _tool("nvcc") and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("no CUDA compiler (nvcc)")
    if "kernels=ON" not in _configure(tmp_path / "build", *_one_arch()):
        pytest.skip("CMake found no CUDA compiler or no kernels")
    _compile(tmp_path / "build", target="attn_deploy_kernels_release_archs")
