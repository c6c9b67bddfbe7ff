"""A damaged cached native library (truncated or replaced) is detected by its recorded hash and
rebuilt, never loaded: loading a truncated shared library kills the process with SIGBUS."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attn_deploy.ops import native_available

PROBE = """
import torch, attn_deploy.ops as ops
from attn_deploy.ops.carafe import carafe_reference
state = ops.native_available()
assert state["cpu"], state
f, m = torch.randn(1, 4, 5, 6), torch.rand(1, 9, 10, 12)
out = ops.carafe(f, m, 3, 1, 2)
torch.testing.assert_close(out, carafe_reference(f, m, 3, 1, 2), rtol=1e-5, atol=1e-5)
print("ok", state["build_seconds"] > 0)
"""


@pytest.fixture
def cache_copy(tmp_path):
    state = native_available()
    if not state["cpu"]:
        pytest.skip(f"native ops unavailable: {state['reason']}")
    built = Path(state["build_dir"])
    copy = tmp_path / "cache" / "torch_ext" / built.name
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("lock"))
    return tmp_path / "cache", copy / "attn_deploy_native.so"


def _probe(cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "ATTN_DEPLOY_CACHE": str(cache)})


@pytest.mark.parametrize("damage", ["truncate", "replace"])
def test_damaged_cached_library_is_rebuilt_not_loaded(cache_copy, damage):
    cache, library = cache_copy
    intact = _probe(cache)
    assert intact.returncode == 0 and "ok False" in intact.stdout, intact.stderr  # loaded as is
    data = library.read_bytes()
    library.write_bytes(data[: len(data) // 3] if damage == "truncate" else data[::-1])
    run = _probe(cache)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stderr[-2000:]}"  # -7 is SIGBUS
    assert "ok True" in run.stdout and "does not match its recorded hash" in run.stderr
    assert _probe(cache).stdout.strip() == "ok False"  # the rebuilt library is trusted again
