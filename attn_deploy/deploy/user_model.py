"""A user's model: built from a ``package.module:factory`` reference, weights from a checkpoint
(read by :mod:`attn_deploy.deploy.checkpoint`, which never runs code from the file).
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from attn_deploy.deploy.checkpoint import CheckpointOptions, load_checkpoint
from attn_deploy.errors import AttnDeployError, UserCodeError, one_line


def resolve_factory(reference: str) -> Callable[..., Any]:
    """``"package.module:factory"`` -> the callable (a function or an ``nn.Module`` class).

    The part after the colon may be dotted (``module:Class.build``)."""
    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise AttnDeployError(f"model {reference!r}: expected package.module:factory, e.g. "
                              "attn_deploy.deploy.reference_networks:ccnet_resnet")
    try:
        obj: Any = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise UserCodeError(f"model {reference!r}: module {module_name!r} has a syntax error: "
                            f"{exc.msg} ({exc.filename}, line {exc.lineno})") from exc
    except ImportError as exc:
        if "relative import" in str(exc):
            raise UserCodeError(
                f"model {reference!r}: module {module_name!r} uses a relative import ({exc}); "
                "name it as part of its package (package.module:factory) with the package's "
                "parent folder on PYTHONPATH") from exc
        raise AttnDeployError(f"model {reference!r}: cannot import module {module_name!r} "
                              f"({exc}); is its package installed or on PYTHONPATH?") from exc
    except Exception as exc:  # the module's own top-level code raised
        raise UserCodeError(f"model {reference!r}: importing module {module_name!r} raised "
                            f"{one_line(exc)}") from exc
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
                checkpoint: str | Path | None = None,
                options: CheckpointOptions | None = None) -> nn.Module:
    """Call the factory with ``kwargs``, load ``checkpoint`` (if given, see
    :func:`attn_deploy.deploy.checkpoint.load_checkpoint`) and return the model in eval mode.
    Call ``load_checkpoint`` yourself to keep its report."""
    factory = resolve_factory(reference)
    try:
        model = factory(**dict(kwargs or {}))
    except AttnDeployError:
        raise
    except Exception as exc:  # the user's factory: a wrong kwarg (TypeError) or its own error
        raise UserCodeError(f"model {reference!r}: calling it with kwargs "
                            f"{dict(kwargs or {})} raised {one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise AttnDeployError(f"model {reference!r}: expected the factory to return an "
                              f"nn.Module, got {type(model).__name__}")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, options)
    return model.eval()
