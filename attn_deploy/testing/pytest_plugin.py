"""The pytest plugin of attn_deploy (entry point ``pytest11``: ``attn_deploy``), so that one
suite runs on a CPU runner and on a GPU runner with TensorRT::

    pytest                                                 # every runtime present
    pytest --attn-deploy-runtimes ort-cpu,onnx-reference   # just these (absent: skipped)
    pytest --attn-deploy-require tensorrt                  # fail where TensorRT is absent

The options set the defaults of :func:`attn_deploy.testing.assert_parity` and
:func:`~attn_deploy.testing.assert_file_parity`; the ``attn_deploy_runtimes`` fixture gives
the runtimes a test runs. Loading the plugin imports nothing heavy (pytest loads it into every
run of every suite in the environment): attn_deploy's harness is imported when a test uses it.
Disable it with ``-p no:attn_deploy``.
"""
from __future__ import annotations

import sys

import pytest

# The runtimes that run ONNX files (attn_deploy.backends.ONNX_RUNTIMES, copied so that
# loading the plugin does not import the backends; a test keeps the two equal).
RUNTIMES = ("ort-cpu", "ort-cuda", "ort-tensorrt", "onnx-reference", "tensorrt")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("attn_deploy", "attn_deploy parity tests")
    # comma-separated and repeatable rather than nargs="+", which would swallow the test paths
    group.addoption("--attn-deploy-runtimes", action="append", default=None,
                    metavar="RUNTIME[,RUNTIME...]",
                    help="runtimes for attn_deploy.testing's assertions (default: every "
                         f"runtime present): {', '.join(RUNTIMES)}; a named runtime that is "
                         "absent skips the test")
    group.addoption("--attn-deploy-require", action="append", default=None,
                    metavar="RUNTIME[,RUNTIME...]",
                    help="runtimes that must be present: a test that would run one fails "
                         "where it is absent (and it is run even if not in "
                         "--attn-deploy-runtimes)")


def _runtimes(config, option: str) -> list[str]:
    names = [n.strip() for item in config.getoption(option) or [] for n in item.split(",")]
    names = [n for n in names if n]
    bad = [n for n in names if n not in RUNTIMES]
    if bad:
        flag = "--" + option.replace("_", "-")
        raise pytest.UsageError(f"{flag}: unknown runtime(s) {bad}; valid: "
                                f"{', '.join(RUNTIMES)}")
    return list(dict.fromkeys(names))


def pytest_configure(config) -> None:
    runtimes = _runtimes(config, "attn_deploy_runtimes")
    require = _runtimes(config, "attn_deploy_require")
    if runtimes or require:  # only then: without the options nothing is imported
        from attn_deploy.testing.parity import configure_session
        configure_session(runtimes, require)


def pytest_unconfigure(config) -> None:
    # in-process runs (pytester, pytest.main) must not leave their options to the next run
    if "attn_deploy.testing.parity" in sys.modules:
        sys.modules["attn_deploy.testing.parity"].configure_session(None, None)


def pytest_report_header(config) -> list[str]:
    runtimes = _runtimes(config, "attn_deploy_runtimes")
    require = _runtimes(config, "attn_deploy_require")
    if not (runtimes or require):
        return []
    return [f"attn_deploy: runtimes {', '.join(runtimes) if runtimes else 'all present'}"
            + (f"; required {', '.join(require)}" if require else "")]


@pytest.fixture(scope="session")
def attn_deploy_runtimes() -> tuple[str, ...]:
    """The runtimes attn_deploy.testing's assertions run in this session: those of
    ``--attn-deploy-runtimes`` (and ``--attn-deploy-require``), or every runtime present."""
    from attn_deploy.testing.parity import session_runtimes

    return session_runtimes()
