"""Parity tests in your own test suite.

    from attn_deploy.testing import assert_parity, assert_file_parity

    def test_my_block_exports():
        assert_parity(MyBlock(64), torch.randn(2, 64, 16, 16), input_names=["x"],
                      dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})

    def test_release_has_not_drifted():
        assert_file_parity("model.onnx", "tests/golden/model.npz")

The pytest plugin (:mod:`attn_deploy.testing.pytest_plugin`, loaded through the ``pytest11``
entry point) adds ``--attn-deploy-runtimes`` and ``--attn-deploy-require`` and the
``attn_deploy_runtimes`` fixture. Nothing here imports torch or pytest until it is used.
"""
from __future__ import annotations

__all__ = ["GoldenOutputs", "assert_file_parity", "assert_parity", "configure_session",
           "load_outputs", "save_outputs", "session_runtimes"]

_FROM = {"assert_parity": "parity", "assert_file_parity": "parity",
         "configure_session": "parity", "session_runtimes": "parity",
         "GoldenOutputs": "golden", "load_outputs": "golden", "save_outputs": "golden"}


def __getattr__(name):
    if name not in _FROM:
        raise AttributeError(f"module 'attn_deploy.testing' has no attribute {name!r}")
    import importlib

    module = "attn_deploy.testing.parity" if _FROM[name] == "parity" else \
        "attn_deploy.harness.golden"
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
