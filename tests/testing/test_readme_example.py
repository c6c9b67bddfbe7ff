"""The README's "Parity tests in your CI" stays true: its pytest example runs (in a subprocess,
as a user's suite with the plugin) and passes, and every command of its CI workflow parses
with the options that exist."""
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from attn_deploy.backends import availability
from attn_deploy.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Parity tests in your CI")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(), flags=re.S)


def test_readme_pytest_example_runs(tmp_path):
    (example,) = _blocks("python")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_parity.py").write_text(example)
    xml = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                           "no:xdist", "-q", f"--junitxml={xml}", "test_parity.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outcomes = {c.get("name"): [e.tag for e in c] for c in ET.parse(xml).getroot().iter("testcase")}
    trt = [] if availability("tensorrt")[0] else ["skipped"]
    assert outcomes == {"test_onnx_matches_pytorch": [], "test_tensorrt_fp16": trt,
                        "test_shipped_file_matches_the_model": []}, proc.stdout


def test_readme_workflow_commands_parse():
    (workflow,) = _blocks("yaml")
    runs = [line.split("- run:", 1)[1].split("#")[0].strip()
            for line in workflow.splitlines() if "- run:" in line]
    assert len(runs) == 6
    parser = build_parser()
    plugin_options = {"--attn-deploy-runtimes", "--attn-deploy-require", "--junitxml"}
    for run in runs:
        argv = shlex.split(run)
        if argv[0] == "attn-deploy":
            args = parser.parse_args(argv[1:])  # SystemExit (a failure here) if not valid
            assert args.load_outputs and (args.json or args.junit_xml)
        elif argv[0] == "pytest":
            options = {a.split("=")[0] for a in argv if a.startswith("--")}
            assert options <= plugin_options, options
    assert "ATTN_DEPLOY_CACHE" in workflow and "--attn-deploy-require tensorrt" in workflow
