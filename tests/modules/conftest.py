"""Fixtures for block tests."""
import pytest
import torch
from torch import nn


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial norm statistics and affine parameters.

    Freshly built BatchNorm layers are identities in eval mode (mean 0, var 1, weight 1,
    bias 0), which would let an export that dropped or misplaced a norm pass parity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model


@pytest.fixture(name="randomize_norms")
def randomize_norms_fixture():
    return randomize_norms


def assert_export_parity(key: str, model: nn.Module, path):
    """Export ``model`` once (to a folder named after ``path``) and require ONNX Runtime CPU and
    onnx.reference to match eager at the spec's default and alternate dims; returns the proto."""
    import onnx

    from attn_deploy.harness.validate import validate_block

    workdir = path.parent / path.stem
    workdir.mkdir(parents=True, exist_ok=True)
    v = validate_block(key, runtimes=["ort-cpu", "onnx-reference"], workdir=workdir,
                       model=model)
    assert v.export_ok, v.export_error
    failures = [f"{r.runtime} {r.shapes}: {r.message}" for r in v.results if not r.passed]
    assert not failures and len(v.results) == 4, "\n".join(failures)
    return onnx.load(v.onnx_path)


@pytest.fixture(name="export_parity")
def export_parity_fixture():
    return assert_export_parity
