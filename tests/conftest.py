"""Shared fixtures: a scratch folder per test, and quiet seeds."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_model():
    """A two-input, two-output model with a shared dynamic batch, for export and runner tests."""
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x, y):
            return self.conv(x) * 2 + y.mean(), x.sum(1)

    return Tiny().eval()
