"""Training checkpoints of the common frameworks, read without their packages and without running
code from the file, and loaded into a model with a report of every key decision.

    report = load_checkpoint(model, "epoch_40.pth")              # mmengine, Lightning, plain
    report = load_checkpoint(model, "last.ckpt", ema=True)       # the EMA weights
    print(report)

Reading: ``torch.load(weights_only=True)`` first. A file it refuses because of classes it does
not know (mmengine's ``message_hub`` of ``HistoryBuffer`` objects, Lightning's
``hyper_parameters``) is read again through :mod:`attn_deploy.deploy.restricted_unpickler`:
torch's loader with an unpickler that keeps exactly torch's weights-only globals and replaces
every other class by an inert placeholder (never imported, never called). The report names the
placeholders. TorchScript archives are refused (torch would run them through ``torch.jit.load``).

Layouts (the entry that holds the weights):
- a bare state_dict (``torch.save(model.state_dict())``);
- mmengine / mmcv (mmseg 1.x, mmdet 3.x): ``state_dict`` beside ``meta``, ``message_hub``,
  ``optimizer``, ``param_schedulers``; with mmengine's EMAHook, ``state_dict`` already holds the
  EMA weights and ``ema_state_dict`` the averaged model (``module.`` prefix, a ``steps`` counter);
- Lightning: ``state_dict`` (keys prefixed by the LightningModule's attribute, often ``model.``)
  beside ``pytorch-lightning_version``, ``optimizer_states``, ``hyper_parameters``, ...;
- plain dicts: ``model``, ``model_state_dict`` or ``module``;
- EMA weights (``ema_state_dict``, ``state_dict_ema``, ``model_ema``, ``ema``): only when asked,
  by ``ema=True`` or ``key=...``; an EMA entry left unused is mentioned in the report.

Key matching: a prefix made of the usual wrappers (``module.`` from DataParallel/DDP and EMA
wrappers, ``model.`` from Lightning, ``_orig_mod.`` from torch.compile, ``backbone.``, ``net.``)
is stripped when that matches more of the model's keys than not stripping, and the report says
so; ``prefix=`` fixes the choice. Layers swapped by :func:`attn_deploy.deployable` accept their
original key names (the swap's pre-hook); the report counts the renamed keys. Missing keys and
shape mismatches always fail with the full list; unexpected keys fail unless
``allow_unexpected=True`` (a detector checkpoint loaded into its backbone and neck), and are
listed either way.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError

# Entries that hold the model's weights, in the order they are tried.
WEIGHT_ENTRIES = ("state_dict", "model_state_dict", "model", "module")
EMA_ENTRIES = ("ema_state_dict", "state_dict_ema", "model_ema", "ema")
# Counters of averaged-model wrappers (mmengine's ExponentialMovingAverage, torch's
# AveragedModel), saved beside the averaged weights; not weights of the model.
_AVERAGING_COUNTERS = ("steps", "n_averaged")
# Wrapper prefixes a training framework adds to every key.
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "backbone.", "net.")


@dataclass(frozen=True)
class CheckpointOptions:
    """Which weights to take from a checkpoint and how strictly to match them."""

    key: str | None = None          # the entry holding the weights (None: detect)
    ema: bool = False               # take the EMA weights
    prefix: str | None = None       # strip exactly this prefix ("" for none; None: detect)
    allow_unexpected: bool = False  # ignore (and list) keys the model does not have


@dataclass
class CheckpointReport:
    path: str
    loader: str = ""                                   # how the file was unpickled
    placeholders: list[str] = field(default_factory=list)
    layout: str = ""                                   # mmengine | lightning | plain | state_dict
    entry: str = ""                                    # "" = the top level
    other_entries: list[str] = field(default_factory=list)
    unused_ema: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)   # averaging counters left out
    prefix: str = ""
    prefixed: int = 0                                  # keys the prefix was stripped from
    renamed: int = 0                                   # old key names of swapped layers
    loaded: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched)

    def __str__(self) -> str:
        where = f"entry {self.entry!r}" if self.entry else "the top level"
        lines = [f"checkpoint {self.path}: {self.layout} layout, weights from {where}"
                 + (f" (also {', '.join(self.other_entries)})" if self.other_entries else "")]
        lines.append(f"  read with {self.loader}" + (
            f"; {len(self.placeholders)} class(es) kept as inert placeholders, never run: "
            + _shorten(self.placeholders, 6) if self.placeholders else ""))
        if self.unused_ema:
            lines.append(f"  EMA weights in {', '.join(map(repr, self.unused_ema))} not used "
                         "(--ema or --checkpoint-key selects them)")
        if self.dropped:
            lines.append(f"  left out averaging counter(s) {', '.join(self.dropped)}")
        if self.prefix:
            lines.append(f"  stripped prefix {self.prefix!r} from {self.prefixed} key(s)")
        if self.renamed:
            lines.append(f"  {self.renamed} key(s) under the original names of swapped layers, "
                         "renamed by their load hooks")
        lines.append(f"  loaded {self.loaded} tensor(s); missing {len(self.missing)}, unexpected "
                     f"{len(self.unexpected)}, shape mismatches {len(self.mismatched)}")
        for title, keys in (("missing keys", self.missing),
                            ("unexpected keys", self.unexpected),
                            ("shape mismatches", self.mismatched)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): {_shorten(keys, 20)}")
        return "\n".join(lines)


def _shorten(items: list[str], n: int) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _is_torchscript(path: Path) -> bool:
    """torch.jit.save archives carry ``constants.pkl`` (what torch.load looks for as well)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl")
                       for n in z.namelist())
    except (zipfile.BadZipFile, OSError):  # not a zip (legacy format) or damaged: torch says
        return False


def read_checkpoint(path: str | Path) -> tuple[Any, str, list[str]]:
    """Unpickle ``path`` without running code from it: ``(data, loader, placeholders)``, where
    ``placeholders`` lists the classes replaced by inert placeholders (empty when torch's
    weights-only loader read the file)."""
    from attn_deploy.deploy import restricted_unpickler

    path = Path(path)
    if not path.is_file():
        raise AttnDeployError(f"checkpoint {str(path)!r} does not exist")
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load, which runs it
        raise AttnDeployError(f"checkpoint {str(path)!r} is a TorchScript archive "
                              "(torch.jit.save); loading it runs its code. Pass a state_dict "
                              "saved with torch.save(model.state_dict(), path)")
    try:
        return (torch.load(path, map_location="cpu", weights_only=True),
                "torch.load(weights_only=True)", [])
    except pickle.UnpicklingError as exc:
        first = str(exc)
    except Exception as exc:  # any bytes that are not a torch.save file (a text file makes the
        # weights-only unpickler raise IndexError, KeyError, ...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise AttnDeployError(f"checkpoint {str(path)!r} is not a readable torch.save file: "
                              f"{type(exc).__name__}: {first_line}") from exc
    module = restricted_unpickler.pickle_module()
    try:
        data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except Exception as exc:  # anything the file can make the unpickler raise
        found = re.search(r"WeightsUnpickler error:\s*(.+)", first)
        why = found.group(1).strip() if found else first[:200]
        raise AttnDeployError(
            f"checkpoint {str(path)!r} is not a readable torch.save file (weights-only "
            f"loader: {why[:200]}; restricted loader: {type(exc).__name__}: "
            f"{str(exc)[:200]})") from exc
    return (data, "torch.load with attn_deploy's restricted unpickler (the weights-only "
                  "loader refused its classes)", sorted(set(module.replaced)))


def _describe(value: Any) -> str:
    from attn_deploy.deploy.restricted_unpickler import Placeholder

    if isinstance(value, Placeholder):
        return f"a pickled {value.qualname} object"
    return f"a {type(value).__name__}"


def _layout(data: Mapping) -> str:
    if any(k in data for k in ("pytorch-lightning_version", "lightning_version")):
        return "lightning"
    if "state_dict" in data and any(k in data for k in ("meta", "message_hub")):
        return "mmengine"
    return "plain"


def _weights(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def select_weights(data: Any, path: str | Path, options: CheckpointOptions = CheckpointOptions(),
                   report: CheckpointReport | None = None) -> dict[str, torch.Tensor]:
    """The state_dict inside a checkpoint's ``data``, chosen by ``options`` (see the module
    docstring); fills ``report`` (layout, entry, other entries, unused EMA entries)."""
    report = report if report is not None else CheckpointReport(str(path))
    where = f"checkpoint {str(path)!r}"
    if not isinstance(data, Mapping):
        raise AttnDeployError(
            f"{where} holds {_describe(data)}, not a dict of tensors (a whole pickled model?). "
            "It was read without running any code from it; save the weights with "
            "torch.save(model.state_dict(), path) and pass that file")
    entries = [str(k) for k in data]
    if _weights(data) and options.key is None and not options.ema:
        report.layout, report.entry = "state_dict", ""
        return dict(data)
    ema_here = [k for k in EMA_ENTRIES if isinstance(data.get(k), Mapping)]
    if options.key is not None:
        entry = options.key
        if entry not in data:
            raise AttnDeployError(f"{where}: no entry {entry!r} (--checkpoint-key); its "
                                  f"entries are {entries}")
    elif options.ema:
        if not ema_here:
            raise AttnDeployError(f"{where}: no EMA weights (looked for {list(EMA_ENTRIES)}); "
                                  f"its entries are {entries}")
        entry = ema_here[0]
    else:
        entry = next((k for k in WEIGHT_ENTRIES if isinstance(data.get(k), Mapping)), None)
        if entry is None:
            raise AttnDeployError(
                f"{where}: expected a state_dict (a dict of parameter name -> tensor) or one "
                f"under {list(WEIGHT_ENTRIES)}; its entries are {entries[:12]}")
    state = data[entry]
    if not isinstance(state, Mapping) or not state:
        raise AttnDeployError(f"{where}: entry {entry!r} holds {_describe(state)}, not a "
                              "state_dict")
    bad = [f"{k} ({_describe(v)})" for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise AttnDeployError(f"{where}: entry {entry!r} is not a state_dict of tensors: "
                              f"{_shorten(bad, 8)}")
    report.layout, report.entry = _layout(data), entry
    report.other_entries = [k for k in entries if k != entry]
    report.unused_ema = [k for k in ema_here if k != entry]
    return dict(state)


def _candidate_prefixes(keys: list[str]) -> list[str]:
    """"" and every chain of up to two wrapper prefixes that starts some key."""
    chains = [""] + list(WRAPPER_PREFIXES) + [a + b for a in WRAPPER_PREFIXES
                                               for b in WRAPPER_PREFIXES]
    return [p for p in chains if not p or any(k.startswith(p) for k in keys)]


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict, int]:
    out, count = {}, 0
    for k, v in state.items():
        if prefix and k.startswith(prefix):
            k, count = k[len(prefix):], count + 1
        out[k] = v
    return out, count


def match_weights(model: nn.Module, state: Mapping[str, torch.Tensor],
                  options: CheckpointOptions = CheckpointOptions(),
                  report: CheckpointReport | None = None) -> dict[str, torch.Tensor]:
    """``state`` with its wrapper prefix stripped and the old key names of swapped layers
    renamed, compared with ``model``'s keys; fills ``report`` (prefix, renamed, missing,
    unexpected, shape mismatches)."""
    from attn_deploy.deploy.layer_swaps import rename_original_keys

    report = report if report is not None else CheckpointReport("")
    own = model.state_dict()
    if options.prefix is not None:
        if options.prefix and not any(k.startswith(options.prefix) for k in state):
            raise AttnDeployError(f"--checkpoint-prefix {options.prefix!r}: no key of the "
                                  f"checkpoint starts with it, e.g. {next(iter(state))!r}")
        prefixes = [options.prefix]
    else:
        prefixes = _candidate_prefixes(list(state))
    best = None
    for prefix in prefixes:  # most keys matched wins; on a tie the shorter prefix
        stripped, count = _strip(state, prefix)
        renamed, n_renamed = rename_original_keys(model, stripped)
        score = sum(1 for k in renamed if k in own)
        if best is None or score > best[0]:
            best = (score, prefix, count, renamed, n_renamed)
    _, report.prefix, report.prefixed, matched, report.renamed = best
    if report.entry in EMA_ENTRIES or options.ema:
        report.dropped = [k for k in _AVERAGING_COUNTERS if k in matched and k not in own]
        matched = {k: v for k, v in matched.items() if k not in report.dropped}
    report.missing = sorted(set(own) - set(matched))
    report.unexpected = sorted(set(matched) - set(own))
    report.mismatched = sorted(
        f"{k}: checkpoint {tuple(matched[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(matched) if matched[k].shape != own[k].shape)
    report.loaded = len(set(own) & set(matched)) - len(report.mismatched)
    return matched


def load_checkpoint(model: nn.Module, path: str | Path,
                    options: CheckpointOptions | None = None, **kwargs) -> CheckpointReport:
    """Load the weights of checkpoint ``path`` into ``model`` (see the module docstring);
    ``kwargs`` are :class:`CheckpointOptions` fields. A mismatch raises an AttnDeployError that
    carries the whole report, and leaves ``model`` unchanged."""
    options = options or CheckpointOptions(**kwargs)
    report = CheckpointReport(str(path))
    data, report.loader, report.placeholders = read_checkpoint(path)
    state = select_weights(data, path, options, report)
    matched = match_weights(model, state, options, report)
    if not report.ok or (report.unexpected and not options.allow_unexpected):
        hint = ("; keys the model does not have may be allowed with --allow-unexpected-keys"
                if report.ok else "")
        raise AttnDeployError(f"checkpoint {str(path)!r} does not match "
                              f"{type(model).__name__}{hint}:\n{report}")
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in matched.items() if k in own}, strict=True)
    return report
