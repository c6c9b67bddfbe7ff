"""Shared fixtures: quiet seeds, a small two-input model, the one closeness check, and the
reference networks at small widths with trained-looking weights."""
import importlib
import types

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


@pytest.fixture
def close():
    """``close(got, expected, tol=1e-5)``: the same shape, and a relative L2 error
    ``||got - expected|| / ||expected||`` (in float64) of at most ``tol``."""
    def check(got, expected, tol: float = 1e-5) -> None:
        got, expected = torch.as_tensor(got).detach(), torch.as_tensor(expected).detach()
        assert got.shape == expected.shape, (tuple(got.shape), tuple(expected.shape))
        a, b = got.double().cpu(), expected.double().cpu()
        err = (torch.linalg.vector_norm(a - b)
               / torch.linalg.vector_norm(b).clamp_min(1e-30)).item()
        assert err <= tol, f"relative L2 error {err:.3g} > {tol}"
    return check


@pytest.fixture
def import_beside(monkeypatch):
    """import_beside(folder, name): import module ``name`` from a test folder, put on sys.path
    for the test (the command line needs a package.module:factory reference)."""
    def load(folder, name):
        monkeypatch.syspath_prepend(str(folder))
        return importlib.import_module(name)
    return load


def _trained(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights and BN statistics far from the initialisation (a zero attention gamma and
    near-uniform CARAFE kernels would leave the attention paths out of the numbers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * (0.5 if t.dim() < 2 else
                                                             (2.0 / t[0].numel()) ** 0.5))
    return model.eval()


@pytest.fixture(scope="session")
def small_reference_networks():
    """``.ccnet`` / ``.fpn``: keyword arguments of ``ccnet_resnet`` / ``fpn_carafe_resnet`` at
    small widths; ``.trained(model, seed)``: the model with trained-looking weights, in eval."""
    return types.SimpleNamespace(
        ccnet={"num_classes": 5, "stem_channels": 8, "base_channels": 8,
               "stage_blocks": [1, 1, 1, 1], "channels": 16, "aux_channels": 8},
        fpn={"base_channels": 8, "stage_blocks": [1, 1, 1, 1], "out_channels": 16,
             "compressed_channels": 8},
        trained=_trained)
