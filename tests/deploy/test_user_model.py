"""Building a user's model from package.module:factory and loading checkpoints safely."""
import pytest
import torch
from torch import nn

from attn_deploy.deploy.user_model import build_model, load_checkpoint, resolve_factory
from attn_deploy.errors import AttnDeployError

FACTORY = "attn_deploy.deploy.examples:ccnet_small"


def test_factory_reference_resolves_and_bad_ones_explain():
    assert resolve_factory(FACTORY).__name__ == "ccnet_small"
    assert resolve_factory("torch.nn:Conv2d") is nn.Conv2d
    for bad, words in [("attn_deploy.deploy.examples", "package.module:factory"),
                       ("no_such_pkg.mod:f", "cannot import module 'no_such_pkg.mod'"),
                       ("attn_deploy.deploy.examples:nope", "has no attribute 'nope'"),
                       ("attn_deploy.deploy.examples:__doc__", "not a callable")]:
        with pytest.raises(AttnDeployError, match=words):
            resolve_factory(bad)
    with pytest.raises(AttnDeployError, match="kwargs"):
        build_model(FACTORY, {"no_such_arg": 1})
    with pytest.raises(AttnDeployError, match="expected the factory to return an nn.Module"):
        build_model("torch:zeros", {"size": (2,)})


def _trained(seed):
    torch.manual_seed(seed)
    return build_model(FACTORY, {"width": 16})


def test_checkpoint_round_trip_plain_nested_and_dataparallel(tmp_path):
    src, x = _trained(1), torch.randn(2, 3, 24, 24)
    for i, payload in enumerate([src.state_dict(),
                                 {"state_dict": src.state_dict(), "meta": {"epoch": 3}},
                                 {f"module.{k}": v for k, v in src.state_dict().items()}]):
        path = tmp_path / f"ckpt{i}.pt"
        torch.save(payload, path)
        dst = build_model(FACTORY, {"width": 16}, checkpoint=path)
        with torch.no_grad():
            assert torch.equal(dst(x), src(x))


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(_trained(0), path)  # a pickled nn.Module, not a state_dict
    with pytest.raises(AttnDeployError, match=r"pickled Python objects \(attn_deploy\.deploy\."
                                              r"examples\.CCNetSmall\).*weights_only=True.*"
                                              r"model\.state_dict\(\)"):
        load_checkpoint(_trained(0), path)
    torch.save({"weights": [1, 2, 3]}, tmp_path / "odd.pt")
    with pytest.raises(AttnDeployError, match=r"expected a state_dict.*\['weights'\]"):
        load_checkpoint(_trained(0), tmp_path / "odd.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AttnDeployError, match="not a readable torch.save file"):
        load_checkpoint(_trained(0), tmp_path / "junk.pt")
    with pytest.raises(AttnDeployError, match="does not exist"):
        load_checkpoint(_trained(0), tmp_path / "missing.pt")


def test_state_dict_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    state = _trained(0).state_dict()
    del state["classifier.bias"]
    state["head.extra.weight"] = torch.zeros(3)
    state["classifier.weight"] = torch.zeros(7, 16, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(AttnDeployError) as err:
        load_checkpoint(_trained(0), tmp_path / "bad.pt")
    msg = str(err.value)
    assert "missing keys (1): classifier.bias" in msg
    assert "unexpected keys (1): head.extra.weight" in msg
    assert "classifier.weight: checkpoint (7, 16, 1, 1), model (5, 16, 1, 1)" in msg
