"""Fixtures for the robustness tests: small models importable as ``robustness_models`` (the
command line needs a package.module:factory reference)."""
import importlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def models(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("robustness_models")
