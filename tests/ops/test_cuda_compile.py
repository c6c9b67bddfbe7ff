"""The CUDA kernels of plugins/kernels compile with nvcc for every GPU generation we ship for.

One nvcc call compiles both .cu files for sm_75, 80, 86, 87, 89 and 90 (compile only, into a
temporary directory), with PyTorch's half-precision flags, which are the stricter of the two
builds that use these files (the PyTorch extension and the TensorRT plugin library). Runs
wherever nvcc is installed; no GPU needed.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[2] / "plugins" / "kernels"
ARCHS = (75, 80, 86, 87, 89, 90)
# The extension builds CUDA sources with these (torch.utils.cpp_extension.COMMON_NVCC_FLAGS).
TORCH_HALF_FLAGS = ("-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_HALF2_OPERATORS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__")


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = Path(cuda_home) / "bin" / "nvcc"
    return str(candidate) if candidate.exists() else None


@pytest.mark.skipif(_nvcc() is None, reason="nvcc not found (PATH, CUDA_HOME, /usr/local/cuda)")
def test_kernels_compile_for_all_target_architectures(tmp_path):
    sources = sorted(KERNELS.glob("*.cu"))
    assert {s.name for s in sources} >= {"carafe_kernel.cu", "criss_cross_kernel.cu"}
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]
    command = [_nvcc(), "-c", "-std=c++17", "-O3", "--threads", "0", *gencode, *TORCH_HALF_FLAGS,
               f"-I{KERNELS}", "-odir", str(tmp_path), *map(str, sources)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, (f"nvcc failed ({elapsed:.0f} s):\n{' '.join(command)}\n"
                                    f"{result.stdout}\n{result.stderr}")
    objects = {p.name for p in tmp_path.glob("*.o")}
    assert objects == {s.with_suffix(".o").name for s in sources}, objects
    print(f"nvcc compiled {len(sources)} files for sm_{', sm_'.join(map(str, ARCHS))} "
          f"in {elapsed:.1f} s")


def test_kernel_launch_syntax_stays_in_cu_files():
    """The TensorRT glue and the host code call launchers; no <<<>>> outside the .cu files."""
    plugins = KERNELS.parent
    offenders = [p for p in plugins.rglob("*") if p.suffix in (".h", ".hpp", ".cpp", ".cc")
                 and "<<<" in p.read_text(errors="ignore")]
    assert not offenders, f"kernel launches outside .cu files: {offenders}"
