"""Fixtures for the deploy tests: the mmcv look-alike layers, importable as a module (the
command line needs a package.module:factory reference), and checkpoints in mmengine's layout."""
import collections
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.fixture
def lookalikes(import_beside):
    return import_beside(HERE, "deploy_lookalikes")


def _mmengine_classes():
    """Stand-ins for mmengine's HistoryBuffer (numpy arrays inside, as in mmengine) and
    ConfigDict, under mmengine's module names."""
    hb_module = types.ModuleType("mmengine.logging.history_buffer")
    cfg_module = types.ModuleType("mmengine.config.config")

    class HistoryBuffer:
        def __init__(self, values):
            self._log_history = np.asarray(values, dtype=np.float64)
            self._count_history = np.ones(len(values))
            self.max_length = 1000000

    class ConfigDict(dict):
        pass

    for cls, module in ((HistoryBuffer, hb_module), (ConfigDict, cfg_module)):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
    hb_module.HistoryBuffer, cfg_module.ConfigDict = HistoryBuffer, ConfigDict
    modules = {"mmengine": types.ModuleType("mmengine"),
               "mmengine.logging": types.ModuleType("mmengine.logging"),
               "mmengine.config": types.ModuleType("mmengine.config"),
               hb_module.__name__: hb_module, cfg_module.__name__: cfg_module}
    return HistoryBuffer, ConfigDict, modules


@pytest.fixture
def mmengine_checkpoint(monkeypatch):
    """``write(path, state_dict, ema_state_dict=None)``: a checkpoint in the layout of mmengine's
    Runner.save_checkpoint (mmseg 1.x / mmdet 3.x): meta (with a ConfigDict), state_dict,
    message_hub (HistoryBuffer objects), optimizer state, param_schedulers and, with EMA,
    mmengine's ema_state_dict ("module." prefix, a "steps" counter). The stand-in classes are
    importable only while the file is written."""

    def write(path, state, ema_state=None):
        HistoryBuffer, ConfigDict, modules = _mmengine_classes()
        params = [t for t in state.values() if t.is_floating_point()]
        ckpt = {
            "meta": {"epoch": 12, "iter": 3000, "mmengine_version": "0.10.4",
                     "dataset_meta": {"classes": ("road", "car"), "palette": [[1, 2, 3]]},
                     "cfg": ConfigDict(model=ConfigDict(type="EncoderDecoder")), "seed": 0},
            "state_dict": collections.OrderedDict(state),
            "message_hub": {"log_scalars": {"train/loss": HistoryBuffer([0.9, 0.5]),
                                            "train/lr": HistoryBuffer([0.01])},
                            "runtime_info": {"epoch": 12, "iter": 3000},
                            "resumed_keys": {"epoch": True}},
            "optimizer": {"state": {i: {"momentum_buffer": torch.zeros_like(p)}
                                    for i, p in enumerate(params)},
                          "param_groups": [{"lr": 0.01, "momentum": 0.9,
                                            "params": list(range(len(params)))}]},
            "param_schedulers": [{"eta_min": 1e-4, "power": 0.9, "last_step": 3000}],
        }
        if ema_state is not None:
            ckpt["ema_state_dict"] = {"steps": torch.tensor(3000),
                                      **{f"module.{k}": v for k, v in ema_state.items()}}
        with monkeypatch.context() as m:
            for name, module in modules.items():
                m.setitem(sys.modules, name, module)
            torch.save(ckpt, path)
        return path

    return write
