"""Training checkpoints read without their frameworks and without running code from the file:
mmengine (message_hub of HistoryBuffer objects), Lightning, plain dicts, EMA entries; prefixes
reported; mismatches listed; malicious pickles never executed."""
import os
import sys
import zipfile

import pytest
import torch
from torch import nn

from attn_deploy.deploy.checkpoint import (CheckpointOptions, load_checkpoint, read_checkpoint)
from attn_deploy.errors import AttnDeployError


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    with torch.no_grad():  # "trained" running statistics, so buffers are checked as well
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
        net[1].num_batches_tracked.fill_(7)
    return net.eval()


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_mmengine_checkpoint_loads_without_mmengine(tmp_path, mmengine_checkpoint):
    src, ema = _net(1), _net(2)
    mmengine_checkpoint(tmp_path / "epoch_12.pth", src.state_dict(), ema.state_dict())
    assert "mmengine" not in sys.modules  # the loader must not need it
    with pytest.raises(Exception, match="Unsupported global"):  # torch's own loader refuses
        torch.load(tmp_path / "epoch_12.pth", weights_only=True)
    dst = _net(0)
    report = load_checkpoint(dst, tmp_path / "epoch_12.pth")
    assert _same(dst, src)
    assert report.layout == "mmengine" and report.entry == "state_dict" and report.ok
    assert "restricted unpickler" in report.loader
    assert {"mmengine.logging.history_buffer.HistoryBuffer",
            "mmengine.config.config.ConfigDict"} <= set(report.placeholders)
    assert report.unused_ema == ["ema_state_dict"]
    text = str(report)
    assert "inert placeholders, never run" in text and "EMA weights in 'ema_state_dict'" in text
    assert "missing 0, unexpected 0" in text and report.loaded == len(src.state_dict())

    # the EMA weights, chosen by the flag: "module." stripped and mmengine's steps counter left out
    dst = _net(0)
    report = load_checkpoint(dst, tmp_path / "epoch_12.pth", ema=True)
    assert _same(dst, ema) and report.entry == "ema_state_dict"
    assert report.prefix == "module." and report.dropped == ["steps"]
    assert "stripped prefix 'module.' from" in str(report)
    dst = _net(0)
    load_checkpoint(dst, tmp_path / "epoch_12.pth", key="ema_state_dict")
    assert _same(dst, ema)


def test_lightning_timm_and_plain_layouts(tmp_path):
    src, ema = _net(3), _net(4)
    state = src.state_dict()
    lightning = {"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
                 "state_dict": {f"model.{k}": v for k, v in state.items()},
                 "optimizer_states": [{"state": {}, "param_groups": []}], "lr_schedulers": [],
                 "hyper_parameters": {"lr": 0.1}, "loops": {}, "callbacks": {}}
    timm = {"epoch": 9, "arch": "net", "state_dict": state, "state_dict_ema": ema.state_dict()}
    cases = [("lightning.ckpt", lightning, {}, src, "lightning", "model."),
             ("timm.pth", timm, {}, src, "plain", ""),
             ("timm_ema.pth", timm, {"ema": True}, ema, "plain", ""),
             ("plain.pt", {"model": state, "epoch": 1}, {}, src, "plain", ""),
             ("ddp.pt", {f"module.{k}": v for k, v in state.items()}, {}, src, "state_dict",
              "module."),
             ("compiled.pt", {"model_state_dict": {f"_orig_mod.{k}": v
                                                   for k, v in state.items()}},
              {}, src, "plain", "_orig_mod.")]
    for name, payload, options, expected, layout, prefix in cases:
        torch.save(payload, tmp_path / name)
        dst = _net(0)
        report = load_checkpoint(dst, tmp_path / name, **options)
        assert _same(dst, expected), name
        assert (report.layout, report.prefix) == (layout, prefix), name
        assert report.loader == "torch.load(weights_only=True)"  # nothing foreign inside
    # an explicit prefix is used as given
    dst = _net(0)
    report = load_checkpoint(dst, tmp_path / "lightning.ckpt", prefix="model.")
    assert _same(dst, src) and report.prefixed == len(state)
    with pytest.raises(AttnDeployError, match="no key of the checkpoint starts with it"):
        load_checkpoint(_net(0), tmp_path / "lightning.ckpt", prefix="net.")
    with pytest.raises(AttnDeployError, match=r"no EMA weights .*entries are \['model', 'epoch'\]"):
        load_checkpoint(_net(0), tmp_path / "plain.pt", ema=True)
    with pytest.raises(AttnDeployError, match="no entry 'ema' .*--checkpoint-key"):
        load_checkpoint(_net(0), tmp_path / "timm.pth", key="ema")


def test_mismatch_lists_missing_unexpected_and_shapes_and_leaves_the_model(tmp_path):
    state = _net(1).state_dict()
    del state["3.bias"]
    state["head.fc.weight"] = torch.zeros(3)
    state["0.weight"] = torch.zeros(8, 3, 5, 5)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "bad.pt")
    dst = _net(0)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(AttnDeployError) as err:
        load_checkpoint(dst, tmp_path / "bad.pt")
    msg = str(err.value)
    assert "stripped prefix 'module.'" in msg
    assert "missing keys (1): 3.bias" in msg and "unexpected keys (1): head.fc.weight" in msg
    assert "0.weight: checkpoint (8, 3, 5, 5), model (8, 3, 3, 3)" in msg
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())

    # unexpected keys alone: refused by default, loaded (and listed) when allowed
    src = _net(1)
    torch.save({**src.state_dict(), "rpn_head.conv.weight": torch.zeros(2)}, tmp_path / "det.pt")
    with pytest.raises(AttnDeployError, match="--allow-unexpected-keys"):
        load_checkpoint(_net(0), tmp_path / "det.pt")
    dst = _net(0)
    report = load_checkpoint(dst, tmp_path / "det.pt", allow_unexpected=True)
    assert _same(dst, src) and report.unexpected == ["rpn_head.conv.weight"]
    assert "unexpected keys (1): rpn_head.conv.weight" in str(report)


class _Exploit:
    """A pickle that calls a function when loaded: the classic checkpoint attack."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_malicious_pickles_never_run(tmp_path):
    marker = tmp_path / "pwned"
    state = _net(1).state_dict()
    payloads = {
        "os_system": {"state_dict": state, "meta": _Exploit(os.system, f"touch {marker}")},
        "exec": {"state_dict": state, "meta": _Exploit(exec, f"open({str(marker)!r}, 'w')")},
        "top_level": _Exploit(os.system, f"touch {marker}"),
    }
    for name, payload in payloads.items():
        torch.save(payload, tmp_path / f"{name}.pt")
    data, loader, replaced = read_checkpoint(tmp_path / "os_system.pt")
    assert not marker.exists()
    assert "restricted unpickler" in loader and replaced == [f"{os.system.__module__}.system"]
    assert data["meta"].args == (f"touch {marker}",)  # the placeholder holds the argument
    dst = _net(0)
    report = load_checkpoint(dst, tmp_path / "exec.pt")
    assert not marker.exists() and report.placeholders == ["builtins.exec"]
    assert _same(dst, _net(1))
    with pytest.raises(AttnDeployError, match=r"holds a pickled posix\.system object, not a "
                                              r"dict of tensors.*without running any code"):
        load_checkpoint(_net(0), tmp_path / "top_level.pt")
    assert not marker.exists()


def test_pickled_model_torchscript_and_junk_are_refused(tmp_path):
    torch.save(_net(1), tmp_path / "whole.pt")  # torch.save(model): classes, not a state_dict
    with pytest.raises(AttnDeployError, match=r"holds a pickled torch\.nn\.modules\.container\."
                                              r"Sequential object.*model\.state_dict\(\)"):
        load_checkpoint(_net(0), tmp_path / "whole.pt")
    torch.jit.save(torch.jit.script(_net(1)), tmp_path / "scripted.pt")
    assert zipfile.is_zipfile(tmp_path / "scripted.pt")
    with pytest.raises(AttnDeployError, match="TorchScript"):
        load_checkpoint(_net(0), tmp_path / "scripted.pt")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "odd.pt")
    with pytest.raises(AttnDeployError, match=r"expected a state_dict.*\['weights'\]"):
        load_checkpoint(_net(0), tmp_path / "odd.pt")
    torch.save({"state_dict": {"0.weight": torch.zeros(1), "note": "x"}}, tmp_path / "mixed.pt")
    with pytest.raises(AttnDeployError, match=r"entry 'state_dict' is not a state_dict of "
                                              r"tensors: note \(a str\)"):
        load_checkpoint(_net(0), tmp_path / "mixed.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AttnDeployError, match="not a readable torch.save file"):
        load_checkpoint(_net(0), tmp_path / "junk.pt")
    with pytest.raises(AttnDeployError, match="does not exist"):
        load_checkpoint(_net(0), tmp_path / "missing.pt")
    assert CheckpointOptions().key is None
