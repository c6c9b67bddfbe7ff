"""A user's model: built from a ``package.module:factory`` reference, weights from a checkpoint.

Checkpoints are read with ``torch.load(..., weights_only=True)``: only tensors, containers and
plain values are unpickled, never arbitrary Python objects, so a checkpoint cannot run code.
A file that holds a pickled object (a whole ``nn.Module`` saved with ``torch.save(model)``)
is refused with a message saying how to save a state_dict instead.
"""
from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError

# Keys under which training loops commonly nest the model's state_dict (mmcv/mmengine and
# PyTorch Lightning use "state_dict", many scripts "model" or "model_state_dict").
_NESTED_KEYS = ("state_dict", "model_state_dict", "model")


def resolve_factory(reference: str) -> Callable[..., Any]:
    """``"package.module:factory"`` -> the callable (a function or an ``nn.Module`` class).

    The part after the colon may be dotted (``module:Class.build``)."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise AttnDeployError(f"model {reference!r}: expected package.module:factory, e.g. "
                              "attn_deploy.deploy.examples:ccnet_small")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise AttnDeployError(f"model {reference!r}: cannot import module {module_name!r} "
                              f"({exc}); is its package installed or on PYTHONPATH?") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttnDeployError(f"model {reference!r}: module {module_name!r} has no "
                                  f"attribute {attr!r}") from None
    if not callable(obj):
        raise AttnDeployError(f"model {reference!r}: {attr!r} is a {type(obj).__name__}, "
                              "not a callable that builds a model")
    return obj


def build_model(reference: str, kwargs: Mapping[str, Any] | None = None,
                checkpoint: str | Path | None = None) -> nn.Module:
    """Call the factory with ``kwargs``, load ``checkpoint`` (if given) and return the model in
    eval mode."""
    factory = resolve_factory(reference)
    try:
        model = factory(**dict(kwargs or {}))
    except TypeError as exc:
        raise AttnDeployError(f"model {reference!r}: calling it with kwargs "
                              f"{dict(kwargs or {})} failed: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise AttnDeployError(f"model {reference!r}: expected the factory to return an "
                              f"nn.Module, got {type(model).__name__}")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in ``path`` (tensors only), unwrapped from one of the usual nesting keys
    ("state_dict", "model_state_dict", "model") and from DataParallel's "module." prefix."""
    path = Path(path)
    if not path.is_file():
        raise AttnDeployError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle of allowed types: corrupt or not a torch.save file
            why = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
            raise AttnDeployError(
                f"checkpoint {str(path)!r} is not a readable torch.save file of tensors "
                f"({why.group(1).strip() if why else str(exc)[:200]})") from exc
        raise AttnDeployError(
            f"checkpoint {str(path)!r} holds pickled Python objects ({found.group(1)}), not "
            "only tensors, and is refused: it is read with torch.load(weights_only=True), "
            "which will not run the code a pickle may carry. Save the weights with "
            "torch.save(model.state_dict(), path) and pass that file") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise AttnDeployError(f"checkpoint {str(path)!r} is not a readable torch.save file: "
                              f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    state = _unwrap(data, path)
    prefix = "module."
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _unwrap(data: Any, path: Path) -> dict[str, torch.Tensor]:
    def tensors_only(d: Mapping) -> bool:
        return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                               for k, v in d.items())

    if isinstance(data, Mapping):
        if tensors_only(data):
            return dict(data)
        for key in _NESTED_KEYS:
            inner = data.get(key)
            if isinstance(inner, Mapping) and tensors_only(inner):
                return dict(inner)
        others = sorted(k for k, v in data.items() if not isinstance(v, torch.Tensor))[:8]
        raise AttnDeployError(
            f"checkpoint {str(path)!r}: expected a state_dict (a dict of parameter name -> "
            f"tensor, possibly under one of the keys {list(_NESTED_KEYS)}), got a dict whose "
            f"entries {[str(k) for k in others]} are not tensors")
    raise AttnDeployError(f"checkpoint {str(path)!r}: expected a state_dict (a dict of "
                          f"parameter name -> tensor), got a {type(data).__name__}")


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the state_dict in ``path`` into ``model`` strictly; a mismatch raises an error that
    lists the missing keys, the unexpected keys and the shape mismatches."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"checkpoint {str(path)!r} does not match {type(model).__name__}:"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("shape mismatches", shapes)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)"
                                                if len(keys) > 20 else "")
                parts.append(f"{title} ({len(keys)}): {shown}")
        raise AttnDeployError("\n  ".join(parts))
    model.load_state_dict(state, strict=True)
    return model
