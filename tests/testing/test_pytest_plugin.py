"""attn_deploy.testing in a user's own suite: the suite below is run by pytest in a subprocess,
with the plugin loaded through its entry point, and its outcomes are read from pytest's JUnit
XML: a faithful export passes, a deliberately wrong export fails with the parity table, a named
but absent runtime skips, a required but absent one fails. The session options are checked
in-process (pytest.main), where nothing is exported."""
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from attn_deploy.backends import ONNX_RUNTIMES
from attn_deploy.testing import pytest_plugin

USER_SUITE = '''
import torch
from attn_deploy.testing import assert_parity

class Gate(torch.nn.Module):
    """x [N, 8, H, W] -> x scaled per channel by a gate from its spatial mean."""
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x.mean((2, 3), keepdim=True)))

class WrongExport(Gate):
    """Eager is Gate; the exported graph adds 1e-3 (a deliberately wrong export)."""
    def forward(self, x):
        y = super().forward(x)
        return y + 1e-3 if torch.onnx.is_in_onnx_export() else y

torch.manual_seed(0)
X = torch.randn(2, 8, 6, 5)
AXES = {"x": {0: "N", 2: "H", 3: "W"}}

def test_faithful_export_passes(attn_deploy_runtimes):
    assert attn_deploy_runtimes == ("ort-cpu", "onnx-reference")  # from the command line
    v = assert_parity(Gate(), X, input_names=["x"], dynamic_axes=AXES)
    assert [r.status for r in v.results] == ["pass"] * 4, v.results
    assert [c[0] for c in v.cases] == ["x:2x8x6x5", "x:3x8x7x6"]

def test_wrong_export_fails():
    assert_parity(WrongExport(), X, input_names=["x"], dynamic_axes=AXES)

def test_absent_runtime_skips():
    assert_parity(Gate(), X, input_names=["x"], dynamic_axes=AXES, runtimes=["{absent}"])

def test_required_runtime_absent_fails():
    assert_parity(Gate(), X, input_names=["x"], dynamic_axes=AXES, require=["{absent}"])
'''


def _outcomes(xml_path) -> dict[str, tuple[str, ET.Element | None]]:
    """{test name: (passed | failure | error | skipped, that element)} from pytest's JUnit."""
    out = {}
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        child = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        out[case.get("name")] = ("passed" if child is None else child.tag, child)
    return out


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_user_suite_in_subprocess(tmp_path, absent_runtime):
    absent = absent_runtime
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the user's rootdir, not ours
    (tmp_path / "test_user.py").write_text(USER_SUITE.replace("{absent}", absent))
    xml = tmp_path / "junit.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
         f"--junitxml={xml}", "--attn-deploy-runtimes", "ort-cpu,onnx-reference",
         "test_user.py"], cwd=tmp_path, env=_user_env(), capture_output=True, text=True,
        timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log  # pytest: some tests failed
    assert "attn_deploy: runtimes ort-cpu, onnx-reference" in log  # the plugin's header
    got = _outcomes(xml)
    assert {k: v[0] for k, v in got.items()} == {
        "test_faithful_export_passes": "passed", "test_wrong_export_fails": "failure",
        "test_absent_runtime_skips": "skipped", "test_required_runtime_absent_fails": "failure",
    }, log
    wrong = got["test_wrong_export_fails"][1]
    assert wrong.get("message").startswith(
        "AssertionError: attn_deploy parity failed for WrongExport")
    # the error is validate's table: a row per runtime and shape, the worst element (pytest
    # shortens the message attribute; the element's text has the whole report)
    report = wrong.text
    for text in ("runtime", "rel L2", "max abs", "ort-cpu          x:2x8x6x5",
                 "onnx-reference   x:3x8x7x6", "worst at", "max_abs=1.00e-03"):
        assert text in report, report
    assert report.count(" fail ") >= 4
    skipped = got["test_absent_runtime_skips"][1].get("message")
    assert f"{absent} unavailable" in skipped
    required = got["test_required_runtime_absent_fails"][1].get("message")
    assert f"required runtime(s) absent: {absent}" in required


def test_session_options_in_process(tmp_path, absent_runtime):
    absent = absent_runtime
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_opts.py").write_text(textwrap.dedent('''
        import torch
        from attn_deploy.testing import assert_parity

        def test_required_by_the_session(attn_deploy_runtimes):
            assert "{absent}" in attn_deploy_runtimes
            assert_parity(torch.nn.Identity(), torch.randn(2, 3))
    ''').replace("{absent}", absent))
    xml = tmp_path / "junit.xml"
    args = [str(tmp_path / "test_opts.py"), f"--rootdir={tmp_path}", "-p", "no:cacheprovider",
            "-p", "no:xdist", "-q", f"--junitxml={xml}"]
    assert pytest.main(args + ["--attn-deploy-require", absent]) == pytest.ExitCode.TESTS_FAILED
    (_, failure), = _outcomes(xml).values()
    assert f"required runtime(s) absent: {absent}" in failure.get("message")
    # an unknown runtime is a usage error, and no option outlives its run
    assert pytest.main(args + ["--attn-deploy-runtimes", "ort-cpu,bogus"]) == \
        pytest.ExitCode.USAGE_ERROR
    from attn_deploy.testing.parity import _session
    assert _session == {"runtimes": None, "require": ()}


def test_plugin_is_registered_and_light():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("attn_deploy") == "attn_deploy.testing.pytest_plugin"
    assert pytest_plugin.RUNTIMES == ONNX_RUNTIMES
    # pytest loads the plugin into every run: it must not pull in torch or onnx
    code = ("import sys, attn_deploy.testing.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_user_env(), check=True).stdout
    assert out.strip() == "[]"
    # and attn_deploy.testing itself needs pytest only to skip
    code = ("import sys; sys.modules['pytest'] = None; import attn_deploy.testing as t; "
            "from attn_deploy.testing import parity; print(callable(t.assert_parity))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_user_env(), check=True).stdout
    assert out.strip() == "True"
