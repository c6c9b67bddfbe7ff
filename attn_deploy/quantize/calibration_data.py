"""Calibration data for post-training quantization: where the feeds come from, checked against
the model's inputs before any of them reaches the calibrator.

Three sources, each giving a list of feeds (``{input name: array}``):

- a folder (:func:`folder_feeds`): one ``.npz`` file per sample whose keys are the model's
  input names, or, for a model with one input, one ``.npy`` file per sample;
- a Python callable (:func:`callable_feeds`), ``"package.module:function"``, called without
  arguments, returning an iterable of feeds (dicts by input name, or sequences in input order;
  numpy arrays or torch tensors);
- a registered block (:func:`block_feeds`): seeded example inputs at the spec's dims.

Every feed is checked like a runner checks its feed (names, rank, dtype, fixed dims, shared dim
symbols) and must be finite: one NaN would set a tensor's range, hence its scale, to NaN. The
error names the sample and the input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from attn_deploy.backends.base import TensorMeta, check_feed, to_numpy
from attn_deploy.errors import AttnDeployError

Feed = dict[str, np.ndarray]

# Seeds of the calibration inputs of a block; held-out inputs use other seeds (accuracy.py).
CALIBRATION_SEED = 7000


def check_feeds(feeds: list[Feed], metas: Mapping[str, TensorMeta], source: str,
                labels: list[str] | None = None) -> list[Feed]:
    """Check every feed against the model's inputs; raise AttnDeployError naming the sample,
    the input, what was expected and what was seen."""
    if not feeds:
        raise AttnDeployError(f"calibration data {source}: no samples; expected at least one "
                              f"feed for inputs {list(metas)}")
    for i, feed in enumerate(feeds):
        label = labels[i] if labels else f"sample {i}"
        check_feed(feed, metas, f"calibration data {source}, {label}")
        for name, arr in feed.items():
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise AttnDeployError(f"calibration data {source}, {label}: input {name!r} has "
                                      f"{bad} NaN/Inf value(s); calibration needs finite values")
    return feeds


def folder_feeds(folder: str | Path, metas: Mapping[str, TensorMeta]) -> list[Feed]:
    """Feeds from a folder of ``.npz`` (one sample each, keys = input names) or, for a model
    with one input, ``.npy`` files (one sample each), in file-name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AttnDeployError(f"calibration folder {str(folder)!r} does not exist or is not a "
                              "folder")
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npz", ".npy") and p.is_file())
    if not files:
        raise AttnDeployError(f"calibration folder {str(folder)!r} has no .npz or .npy files; "
                              f"expected one file per sample with inputs {list(metas)}")
    kinds = {p.suffix for p in files}
    if len(kinds) > 1:
        raise AttnDeployError(f"calibration folder {str(folder)!r} mixes .npz and .npy files; "
                              "use one kind")
    if kinds == {".npy"} and len(metas) != 1:
        raise AttnDeployError(f"calibration folder {str(folder)!r} has .npy files, but the model "
                              f"has {len(metas)} inputs {list(metas)}; give one .npz per sample "
                              "with one array per input name")
    feeds = []
    for p in files:
        try:
            if p.suffix == ".npy":
                feeds.append({next(iter(metas)): np.load(p, allow_pickle=False)})
            else:
                with np.load(p, allow_pickle=False) as data:
                    feeds.append({k: data[k] for k in data.files})
        except (OSError, ValueError) as exc:
            raise AttnDeployError(f"calibration file {str(p)!r} is not a readable numpy file: "
                                  f"{exc}") from exc
    return check_feeds(feeds, metas, repr(str(folder)), [repr(p.name) for p in files])


def _as_feed(item: Any, metas: Mapping[str, TensorMeta], source: str, index: int) -> Feed:
    if isinstance(item, Mapping):
        return {str(k): to_numpy(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        if len(item) != len(metas):
            raise AttnDeployError(f"calibration data {source}, sample {index}: a sequence of "
                                  f"{len(item)} arrays; expected {len(metas)}, one per input "
                                  f"{list(metas)} in order")
        return {n: to_numpy(v) for n, v in zip(metas, item)}
    if len(metas) == 1 and (hasattr(item, "shape") or isinstance(item, np.ndarray)):
        return {next(iter(metas)): to_numpy(item)}
    raise AttnDeployError(f"calibration data {source}, sample {index}: expected a dict of "
                          f"arrays by input name {list(metas)}, got {type(item).__name__}")


def callable_feeds(reference: str, metas: Mapping[str, TensorMeta],
                   limit: int | None = None) -> list[Feed]:
    """Feeds from ``"package.module:function"``: called without arguments, it returns an
    iterable of feeds (at most ``limit`` are taken)."""
    from attn_deploy.deploy.user_model import resolve_factory

    fn = resolve_factory(reference)
    try:
        items: Iterable = fn()
    except Exception as exc:
        raise AttnDeployError(f"calibration callable {reference!r} raised "
                              f"{type(exc).__name__}: {exc}") from exc
    if items is None or not hasattr(items, "__iter__"):
        raise AttnDeployError(f"calibration callable {reference!r} returned "
                              f"{type(items).__name__}; expected an iterable of feeds")
    feeds = []
    for i, item in enumerate(items):
        if limit is not None and i >= limit:
            break
        feeds.append(_as_feed(item, metas, repr(reference), i))
    return check_feeds(feeds, metas, repr(reference))


def block_feeds(key: str, config: Mapping[str, Any] | None = None, count: int = 8,
                seed: int = CALIBRATION_SEED, **dims: int) -> list[Feed]:
    """``count`` seeded example inputs of block ``key`` at ``dims`` (default: the spec's)."""
    from attn_deploy.modules.registry import example_inputs, spec

    if count < 1:
        raise AttnDeployError(f"calibration samples: expected at least 1, got {count}")
    s = spec(key, **(config or {}))
    return [{n: t.numpy() for n, t in zip(s.inputs, example_inputs(
        key, seed=seed + i, config=config, **dims))} for i in range(count)]


class FeedReader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over a list of checked feeds."""

    def __init__(self, feeds: list[Feed]):
        self.feeds = feeds
        self._next = 0

    def get_next(self) -> Feed | None:
        if self._next >= len(self.feeds):
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.feeds)
