"""deployable(): each swap reproduces the original layer's outputs, the report names every
swap, and the swapped model exports with dynamic H/W and matches on ONNX Runtime."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import attn_deploy as ad
from attn_deploy.deploy.pipeline import export_model
from attn_deploy.shapes import InputSpec

SIZES = [(2, 16, 9, 12), (3, 16, 14, 7)]


def _check_same(original, swapped, sizes, tol=1e-6):
    for shape in sizes:
        x = torch.randn(shape)
        with torch.no_grad():
            ref, out = original(x), swapped(x)
        assert out.shape == ref.shape
        rel = ((out - ref).norm() / ref.norm()).item()
        assert rel <= tol and torch.allclose(out, ref, atol=1e-5), (shape, rel)


@pytest.mark.parametrize("gamma_as_scale", [True, False])
def test_criss_cross_swap_matches_mmcv_semantics(lookalikes, gamma_as_scale):
    layer = lookalikes.CrissCrossAttention(16, gamma=0.7, gamma_as_scale=gamma_as_scale).eval()
    swapped, report = ad.deployable(layer)
    assert type(swapped).__name__ == "CrissCrossAttention" and swapped is not layer
    assert swapped.recurrence == 1 and swapped.gamma.item() == pytest.approx(0.7)
    assert [s.replacement for s in report.swaps] == ["block cca (recurrence=1)"]
    _check_same(layer, swapped, SIZES)


@pytest.mark.parametrize("k,g,s,dil", [(5, 1, 2, 1), (3, 4, 3, 2)])
def test_carafe_swap_matches_mmcv_semantics(lookalikes, k, g, s, dil):
    layer = lookalikes.CARAFEPack(16, s, up_kernel=k, up_group=g, encoder_dilation=dil,
                                  compressed_channels=8).eval()
    swapped, report = ad.deployable(layer)
    assert type(swapped).__name__ == "CARAFEUpsampler"
    assert report.swaps[0].original == "CARAFEPack"
    _check_same(layer, swapped, SIZES)


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool2d((3, 5)), nn.AdaptiveMaxPool2d(4),
                                  nn.AdaptiveAvgPool2d((1, None)), nn.AdaptiveMaxPool2d((None, 2))])
def test_adaptive_pool_swap_matches(pool):
    swapped, report = ad.deployable(pool)
    assert type(swapped).__name__ == "AdaptivePool2d" and len(report) == 1
    _check_same(pool, swapped, SIZES, tol=1e-6)


def test_kept_and_skipped_layers_are_reported_not_swapped(lookalikes):
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(3, return_indices=True))
    swapped, report = ad.deployable(model)
    assert len(report) == 0 and type(swapped[0]) is nn.AdaptiveAvgPool2d
    assert report.skipped[0].path == "1" and "return_indices" in report.skipped[0].reason
    # a look-alike with extra learned state is not the layer we know: left alone
    odd = lookalikes.CrissCrossAttention(16)
    odd.extra = nn.Parameter(torch.ones(1))
    assert len(ad.deployable(odd)[1]) == 0
    # attn_deploy's own blocks are already deployable
    assert len(ad.deployable(ad.create("carafe", channels=16))[1]) == 0


def test_original_untouched_unless_inplace(lookalikes):
    net = lookalikes.user_net()
    swapped, report = ad.deployable(net)
    assert isinstance(net.cca, lookalikes.CrissCrossAttention)
    assert [s.path for s in report.swaps] == ["cca", "up", "pools.0", "pools.1"]
    assert "cca: CrissCrossAttention -> block cca" in str(report)
    same, _ = ad.deployable(net, inplace=True)
    assert same is net and type(net.cca).__name__ == "CrissCrossAttention" \
        and not isinstance(net.cca, lookalikes.CrissCrossAttention)


def test_swapped_model_exports_dynamic_and_matches_ort(lookalikes, tmp_path):
    net = lookalikes.user_net()
    swapped, _ = ad.deployable(net)
    inputs = [InputSpec("image", ("N", 3, "H", "W"))]
    path, names = export_model(swapped, tmp_path / "user.onnx", inputs, {"N": 2, "H": 10, "W": 12})
    assert names == ["output_0", "output_1"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["N", 3, "H", "W"]
    for shape in [(2, 3, 10, 12), (3, 3, 13, 7)]:
        x = torch.randn(shape)
        with torch.no_grad():
            refs = net(x)  # the ORIGINAL model, mmcv-style layers and all
        outs = session.run(None, {"image": x.numpy()})
        for out, ref in zip(outs, refs):
            ref = ref.numpy()
            assert out.shape == ref.shape
            assert np.linalg.norm(out - ref) / np.linalg.norm(ref) <= 1e-5


def test_swap_check_compares_original_and_swapped(lookalikes):
    from attn_deploy.deploy.pipeline import check_swaps

    net, x = lookalikes.user_net(), (torch.randn(2, 3, 8, 10),)
    swapped, _ = ad.deployable(net)
    assert "matches the original" in check_swaps(net, swapped, x)
    with torch.no_grad():
        swapped.cca.gamma.add_(0.1)  # a swap that lost a weight must not pass
    with pytest.raises(ad.AttnDeployError, match="differs from the original on output 0"):
        check_swaps(net, swapped, x)
    net.up.forward = lambda x: (_ for _ in ()).throw(RuntimeError("needs CUDA"))
    assert "not runnable here (RuntimeError: needs CUDA)" in check_swaps(net, swapped, x)


def _randomised(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def test_original_keys_load_before_or_after_swapping(lookalikes):
    """A checkpoint of the original model (mmcv key names: query_conv, gamma.scale) gives the
    same model whether it is loaded before deployable() or after."""
    trained = _randomised(lookalikes.user_net(), 1)
    state = trained.state_dict()
    assert "cca.gamma.scale" in state and state["cca.gamma.scale"].dim() == 0
    loaded_first = _randomised(lookalikes.user_net(), 2)
    loaded_first.load_state_dict(state)
    loaded_first, _ = ad.deployable(loaded_first)
    swapped_first, _ = ad.deployable(_randomised(lookalikes.user_net(), 3))
    assert "cca.query.weight" in swapped_first.state_dict()
    swapped_first.load_state_dict(state, strict=True)  # old names, through the pre-hook
    for key, value in loaded_first.state_dict().items():
        assert torch.equal(swapped_first.state_dict()[key], value), key
    x = torch.randn(2, 3, 9, 13)
    with torch.no_grad():
        for ref, a, b in zip(trained(x), loaded_first(x), swapped_first(x)):
            assert torch.equal(a, b)
            assert ((a - ref).norm() / ref.norm()).item() <= 1e-6


def test_original_keys_of_a_bias_free_criss_cross_layer(lookalikes, tmp_path):
    """Convs without bias and a Parameter gamma: the swapped block fills zero biases, and the
    checkpoint loader reports the renamed keys."""
    from attn_deploy.deploy.checkpoint import load_checkpoint

    def bias_free(seed):
        layer = lookalikes.CrissCrossAttention(16, gamma=0.4, gamma_as_scale=False)
        for name in ("query_conv", "key_conv", "value_conv"):
            old = getattr(layer, name)
            setattr(layer, name, nn.Conv2d(old.in_channels, old.out_channels, 1, bias=False))
        return _randomised(layer.eval(), seed)

    layer = bias_free(4)
    torch.save({"state_dict": layer.state_dict(), "meta": {}}, tmp_path / "cca.pth")
    swapped, _ = ad.deployable(bias_free(5))
    report = load_checkpoint(swapped, tmp_path / "cca.pth")
    assert report.renamed == 3 and report.ok and not report.unexpected  # gamma keeps its name
    assert "3 key(s) under the original names of swapped layers" in str(report)
    assert torch.count_nonzero(swapped.query.bias) == 0
    _check_same(layer, swapped, SIZES)
