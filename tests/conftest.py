"""Shared fixtures: a scratch folder per test, and quiet seeds."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class Tiny(torch.nn.Module):
    """x [N, 4, H, W], y [N, K] -> (conv(x) * 2 + mean(y) [N, 4, H, W], x.sum(1) [N, H, W])."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x, y):
        return self.conv(x) * 2 + y.mean(), x.sum(1)


@pytest.fixture
def tiny_model():
    """A two-input, two-output model with a shared dynamic batch, for export and runner tests."""
    return Tiny().eval()


@pytest.fixture(scope="session")
def tiny_model_class():
    """The class of ``tiny_model``, for fixtures of a wider scope."""
    return Tiny


@pytest.fixture(scope="session")
def absent_runtime():
    """A runtime this machine lacks (for skip and --require tests); skips where all exist."""
    from attn_deploy.backends import availability

    for runtime in ("tensorrt", "ort-tensorrt", "ort-cuda"):
        if not availability(runtime)[0]:
            return runtime
    pytest.skip("every runtime is present here; the test needs an absent one")
