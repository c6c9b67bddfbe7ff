"""Fixtures for the robustness tests: small models that break a verdict, importable as
``robustness_models``."""
from pathlib import Path

import pytest


@pytest.fixture
def models(import_beside):
    return import_beside(Path(__file__).resolve().parent, "robustness_models")
