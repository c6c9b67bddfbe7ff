"""Building a user's model from package.module:factory, with its checkpoint (the checkpoint
formats themselves: test_checkpoint.py)."""
import pytest
import torch
from torch import nn

from attn_deploy.deploy.user_model import build_model, resolve_factory
from attn_deploy.errors import AttnDeployError

FACTORY = "attn_deploy.deploy.reference_networks:ccnet_resnet"


def test_factory_reference_resolves_and_bad_ones_explain():
    assert resolve_factory(FACTORY).__name__ == "ccnet_resnet"
    assert resolve_factory("torch.nn:Conv2d") is nn.Conv2d
    for bad, words in [("attn_deploy.deploy.reference_networks", "package.module:factory"),
                       ("no_such_pkg.mod:f", "cannot import module 'no_such_pkg.mod'"),
                       ("attn_deploy.deploy.reference_networks:nope", "has no attribute 'nope'"),
                       ("attn_deploy.deploy.reference_networks:__doc__", "not a callable")]:
        with pytest.raises(AttnDeployError, match=words):
            resolve_factory(bad)
    with pytest.raises(AttnDeployError, match="kwargs"):
        build_model(FACTORY, {"no_such_arg": 1})
    with pytest.raises(AttnDeployError, match="expected the factory to return an nn.Module"):
        build_model("torch:zeros", {"size": (2,)})


def test_build_model_loads_the_checkpoint(tmp_path, small_reference_networks):
    small = small_reference_networks.ccnet
    torch.manual_seed(1)
    src, x = build_model(FACTORY, small), torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        src.decode_head.cca.gamma.scale.fill_(0.5)
    torch.save({"state_dict": src.state_dict(), "meta": {"epoch": 3}}, tmp_path / "ckpt.pth")
    torch.manual_seed(2)
    dst = build_model(FACTORY, small, checkpoint=tmp_path / "ckpt.pth")
    assert not dst.training
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
