"""Builds plugins/ with CMake into a temporary folder and runs its CTest host tests.

The plugin library is built and host-tested against every TensorRT header set found: the folders
in $TensorRT_INCLUDE_DIR (separated by ':'), else the public headers that sit next to the
checkout in ../shared/third_party/tensorrt/<version>/include (10.3 for JetPack 6 and 11.1; CI has
them), else third_party/trt-*/include. In CI (``CI`` set) missing headers or a missing CUDA
compiler are a failure, not a skip: the plugin glue must be compiled there. Each build makes the
kernels for one architecture; a slow test compiles them for every release architecture.
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
    if env:
        dirs = [Path(p) for p in env.split(os.pathsep) if p]
    else:
        dirs = (sorted((ROOT.parent / "shared" / "third_party" / "tensorrt").glob("*/include"),
                       key=_version_key)
                or sorted(ROOT.glob("third_party/trt-*/include")))
    return [d for d in dirs if (d / "NvInferRuntime.h").is_file()]


def _version_key(include: Path) -> tuple[int, ...]:
    """Sort 10.3 before 11.1 (and 10.10 after 10.9)."""
    return tuple(int(p) if p.isdigit() else 0 for p in include.parent.name.split("."))


def _skip_or_fail(reason: str) -> None:
    """Outside CI a missing toolchain part is a skip; in CI it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must build the TensorRT plugins)")
    pytest.skip(reason)


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


def _header_params():
    headers = _header_dirs()
    return [pytest.param(h, id=h.parent.name) for h in headers] or [pytest.param(None, id="none")]


@pytest.mark.parametrize("headers", _header_params())
def test_plugins_build_and_host_tests(tmp_path, headers):
    options = _one_arch() + ([f"-DTensorRT_INCLUDE_DIR={headers}"] if headers else [])
    configure = _build(tmp_path / "build", *options)
    out = _ctest(tmp_path / "build")
    assert "plugin_core" in out
    if headers is None:
        _skip_or_fail("TensorRT headers not found ($TensorRT_INCLUDE_DIR, "
                      "../shared/third_party/tensorrt or third_party/trt-*): built and tested "
                      "the TensorRT-free core only")
    if "kernels=ON" not in configure:
        _skip_or_fail("no CUDA compiler: the TensorRT plugins need the kernels")
    for name in ("tensorrt_plugins", "library_exports", "library_loading", "library_links",
                 "static_library_links"):
        assert name in out, out
    lib = tmp_path / "build" / "lib"
    assert (lib / "libattn_deploy_plugins.so").is_file()
    assert (lib / "libattn_deploy_plugins_static.so").is_file()


def test_plugins_build_without_tensorrt(tmp_path):
    configure = _build(tmp_path / "build", *_one_arch())
    assert "tensorrt_plugins=OFF" in configure
    assert "plugin_core" in _ctest(tmp_path / "build")


@pytest.mark.slow
def test_kernels_compile_for_every_release_architecture(tmp_path):
    if not _tool("nvcc") and not Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("no CUDA compiler (nvcc)")
    if "kernels=ON" not in _configure(tmp_path / "build", *_one_arch()):
        pytest.skip("CMake found no CUDA compiler or no kernels")
    _compile(tmp_path / "build", target="attn_deploy_kernels_release_archs")
