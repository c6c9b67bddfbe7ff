"""Build-on-first-use loader of the native CARAFE and criss-cross attention kernels.

The C++/CUDA sources live in ``plugins/`` (``kernels/`` is shared with the TensorRT plugins,
``torch_ext/`` registers the ops with PyTorch). On first use they are compiled with
``torch.utils.cpp_extension`` into a cache directory keyed by a hash of the sources, the compiler
flags and the torch version, so later processes load the cached library in well under a second:

    ``$ATTN_DEPLOY_CACHE/torch_ext/<key>``, default ``~/.cache/attn_deploy/torch_ext/<key>``.

The CPU kernels are always built; the CUDA ones too when torch has CUDA and a GPU is visible. If no
compiler is present or the build fails, :func:`load_extension` returns ``None`` (the reason is kept
for :func:`native_available`) and callers use the PyTorch reference. ``ATTN_DEPLOY_NO_NATIVE=1``
forces that fallback. Concurrent first builds (e.g. pytest-xdist workers) are serialised by an
``flock`` on ``<key>.lock``: one process compiles, the others wait and then load its result.
The library's SHA-256 is recorded when it is built (``build.ok``) and checked before every load:
a truncated or replaced cached library is rebuilt (and the log says so), never loaded.

The loaded ops live in ``torch.ops.attn_deploy_native``::

    carafe_forward(features, masks, kernel_size, group_size, scale_factor) -> Tensor
    carafe_backward(grad_output, features, masks, kernel_size, group_size, scale_factor)
        -> (grad_features, grad_masks)
    criss_cross_attention_forward(query, key, value) -> Tensor
    criss_cross_attention_backward(grad_output, query, key, value)
        -> (grad_query, grad_key, grad_value)
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
KERNELS_DIR = PLUGINS_DIR / "kernels"
TORCH_EXT_DIR = PLUGINS_DIR / "torch_ext"
LIBRARY_NAME = "attn_deploy_native"
CPU_SOURCES = (TORCH_EXT_DIR / "ops.cpp", TORCH_EXT_DIR / "carafe_cpu.cpp",
               TORCH_EXT_DIR / "criss_cross_cpu.cpp")
CUDA_SOURCES = (TORCH_EXT_DIR / "cuda_ops.cpp", KERNELS_DIR / "carafe_kernel.cu",
                KERNELS_DIR / "criss_cross_kernel.cu")
# First CPU-only build on a 2-core machine: 12 s idle, up to 45 s when the cores are busy.
_TYPICAL_BUILD_SECONDS = 20

_lock = threading.Lock()
_state: dict = {"tried": False, "ops": None, "cuda": False, "reason": "not loaded yet",
                "build_dir": None, "build_seconds": None}


def _with_cuda() -> bool:
    from torch.utils.cpp_extension import CUDA_HOME
    return torch.version.cuda is not None and torch.cuda.is_available() and CUDA_HOME is not None


def _cpu_flags() -> list[str]:
    # -fopenmp makes at::parallel_for run in torch's OpenMP pool (it compiles to a serial loop
    # without it). SIMD flags follow the capability torch itself detected on this CPU; it is part
    # of the cache key, so a cache shared between different machines never loads the wrong build.
    flags = ["-O3", "-fopenmp", "-Wno-psabi"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma", "-mf16c"]
    if capability == "AVX512":  # 16-float SIMD packs (kernels/host_device.h)
        flags += ["-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw"]
    return flags


def _cache_root() -> Path:
    root = os.environ.get("ATTN_DEPLOY_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "attn_deploy"


def _build_key(sources: list[Path], cflags: list[str], cuda: bool) -> str:
    digest = hashlib.sha256()
    headers = sorted(KERNELS_DIR.glob("*.h")) + sorted(TORCH_EXT_DIR.glob("*.h"))
    for path in sorted(sources) + headers:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(" ".join([torch.__version__, str(torch.version.cuda), sys.version.split()[0],
                            torch.backends.cpu.get_cpu_capability(), str(cuda), *cflags]).encode())
    return digest.hexdigest()[:16]


def _build(sources: list[Path], cflags: list[str], cuda: bool, build_dir: Path) -> float:
    """Compiles (or loads the cached) library into build_dir; returns seconds spent compiling."""
    from torch.utils.cpp_extension import load

    library = build_dir / f"{LIBRARY_NAME}.so"
    done_marker = build_dir / "build.ok"
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{build_dir.name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released by the kernel even if this process dies
        if done_marker.exists() and library.exists():
            # Loading a truncated or replaced library can kill the process (SIGBUS), so the
            # library must hash to what was recorded when it was built.
            problem = _cached_library_problem(library, done_marker)
            if problem is None:
                torch.ops.load_library(str(library))
                return 0.0
            logger.warning("attn_deploy native ops: %s; rebuilding it", problem)
            library.unlink()  # ninja relinks a missing output; the objects are reused
            done_marker.unlink()
        # A torch file baton left by a killed build would make torch wait forever; while we hold
        # the flock nobody else is building here, so it is stale.
        (build_dir / "lock").unlink(missing_ok=True)
        logger.warning("building attn_deploy native ops (first use, ~%d s; cached in %s)",
                       _TYPICAL_BUILD_SECONDS * (3 if cuda else 1), build_dir)
        start = time.perf_counter()
        load(name=LIBRARY_NAME, sources=[str(s) for s in sources], extra_cflags=cflags,
             extra_cuda_cflags=["-O3"] if cuda else None, extra_include_paths=[str(KERNELS_DIR)],
             build_directory=str(build_dir), is_python_module=False, verbose=False)
        elapsed = time.perf_counter() - start
        record = json.dumps({"seconds": round(elapsed, 1),
                             "sha256": _sha256(library) if library.exists() else None})
        partial = done_marker.with_suffix(".tmp")
        partial.write_text(record + "\n")
        os.replace(partial, done_marker)  # the record appears whole, after the library
        logger.warning("built attn_deploy native ops in %.1f s", elapsed)
        return elapsed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cached_library_problem(library: Path, done_marker: Path) -> str | None:
    """None when ``library`` is the file recorded in ``done_marker``; else what is wrong."""
    try:
        recorded = json.loads(done_marker.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if not recorded:
        return f"cached library {library} has no recorded hash (built by an older version)"
    if _sha256(library) != recorded:
        return f"cached library {library} does not match its recorded hash (truncated or replaced)"
    return None


def _first_load() -> None:
    if not TORCH_EXT_DIR.is_dir():
        _state["reason"] = (f"native sources not found at {PLUGINS_DIR} (install attn_deploy "
                            "from a source checkout to build them)")
        return
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        _state["reason"] = f"no C++ compiler ({compiler!r} not on PATH)"
        return
    from torch.utils.cpp_extension import is_ninja_available
    if not is_ninja_available():
        _state["reason"] = "ninja is not installed (pip install ninja)"
        return
    cflags = _cpu_flags()
    failures = []
    # With CUDA first when torch has it; if that build fails the CPU kernels still get built.
    for cuda in ((True, False) if _with_cuda() else (False,)):
        sources = list(CPU_SOURCES) + (list(CUDA_SOURCES) if cuda else [])
        build_dir = _cache_root() / "torch_ext" / _build_key(sources, cflags, cuda)
        _state["build_dir"] = str(build_dir)
        try:
            _state["build_seconds"] = _build(sources, cflags, cuda, build_dir)
        except Exception as error:  # any compiler or loader failure: fall back
            message = str(error).strip().splitlines()
            failures.append(f"{'CUDA' if cuda else 'CPU'} build failed ({type(error).__name__}: "
                            f"{message[-1] if message else ''}); see {build_dir}")
            logger.warning("attn_deploy native ops: %s", failures[-1])
            continue
        _state.update(ops=torch.ops.attn_deploy_native, cuda=cuda,
                      reason="; ".join(failures) or None)
        return
    _state["reason"] = "; ".join(failures) + " (the PyTorch references run instead)"


def load_extension():
    """The native ops (``torch.ops.attn_deploy_native``), building them on first use, or None.

    None when ``ATTN_DEPLOY_NO_NATIVE=1`` or when they cannot be built; the reason is in
    ``native_available()["reason"]``. A failed build is not retried in the same process.
    """
    if os.environ.get("ATTN_DEPLOY_NO_NATIVE", "") not in ("", "0"):
        return None
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            _first_load()
    return _state["ops"]


def native_available() -> dict:
    """Which native paths are in use: ``{"cpu": bool, "cuda": bool, "reason": str | None, ...}``.

    Builds the ops if that has not been tried yet. ``reason`` says why they are unavailable;
    ``build_dir`` is the cache directory and ``build_seconds`` the compile time of this process
    (0.0 when the library came from the cache).
    """
    if os.environ.get("ATTN_DEPLOY_NO_NATIVE", "") not in ("", "0"):
        return {"cpu": False, "cuda": False, "reason": "disabled by ATTN_DEPLOY_NO_NATIVE",
                "build_dir": None, "build_seconds": None}
    ops = load_extension()
    return {"cpu": ops is not None, "cuda": ops is not None and _state["cuda"],
            "reason": _state["reason"], "build_dir": _state["build_dir"],
            "build_seconds": _state["build_seconds"]}
