"""Fixtures for the deploy tests: the mmcv look-alike layers, importable as a module (the
command line needs a package.module:factory reference)."""
import importlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def lookalikes(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    return importlib.import_module("deploy_lookalikes")
