"""The block registry: keys, specs, factories and example inputs.

Every block file in this package calls :func:`register` once per key at import time. A spec
describes the block's inputs as shape templates whose entries are ints (fixed sizes) or dim
symbols ("N", "H", "W", "L", ...). Every symbol is a dynamic axis of the exported model.

Templates may depend on the constructor's keyword arguments (a block built with
``channels=128`` takes 128 channels), so a registration gives ``inputs`` as a callable of the
resolved constructor config; :func:`spec` evaluates it for the defaults or for given kwargs.
"""
from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import torch
from torch import nn

from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import InputSpec, alternate_dims, check_dims, dims_from_shapes, symbols

Template = tuple  # of int | str
InputsFn = Callable[[Mapping[str, Any]], Mapping[str, Template]]
ExampleFn = Callable[[Mapping[str, tuple], torch.Generator, Mapping[str, Any]], tuple]

FAMILIES = ("channel", "spatial", "sequence")
EXPORT_PATHS = ("std", "plugin", "rewrite")


@dataclass(frozen=True)
class BlockSpec:
    """What a registered block takes and gives, for one constructor config.

    ``inputs``: ordered mapping input name -> shape template (ints and dim symbols).
    ``outputs``: output names, in forward's return order.
    ``dims``: default size of every symbol. ``multiples``: symbols that must be a multiple of
    an int. ``min_dims`` / ``max_dims``: bounds per symbol (default min 1, no max).
    ``input_dtypes``: dtype per input (default float32); masks and lengths say theirs here.
    ``file``: the block's source file (``attn_deploy/modules/feature_bank.py``).
    """

    key: str
    title: str
    paper: str
    family: str
    export_path: str
    inputs: Mapping[str, Template]
    outputs: tuple[str, ...]
    dims: Mapping[str, int]
    multiples: Mapping[str, int] = field(default_factory=dict)
    min_dims: Mapping[str, int] = field(default_factory=dict)
    max_dims: Mapping[str, int] = field(default_factory=dict)
    input_dtypes: Mapping[str, torch.dtype] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    rtol: float = 1e-5
    file: str = ""

    def input_specs(self) -> list[InputSpec]:
        """The inputs in the shape vocabulary shared with user models and recipes."""
        return [InputSpec(n, tuple(t), self.dtype(n)) for n, t in self.inputs.items()]

    @property
    def symbols(self) -> tuple[str, ...]:
        """Dim symbols in order of first appearance across the inputs."""
        return symbols(self.input_specs())

    def dtype(self, name: str) -> torch.dtype:
        return self.input_dtypes.get(name, torch.float32)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """{input name: {axis: symbol}} for every symbolic axis."""
        return {
            name: {i: d for i, d in enumerate(t) if isinstance(d, str)}
            for name, t in self.inputs.items()
        }

    def check_dims(self, dims: Mapping[str, int]) -> dict[str, int]:
        """Fill defaults and validate sizes against multiples and bounds; returns all dims."""
        unknown = set(dims) - set(self.symbols)
        if unknown:
            raise AttnDeployError(
                f"{self.key}: unknown dim symbol(s) {sorted(unknown)}; "
                f"this block's symbols are {list(self.symbols)}")
        full = {s: dims.get(s, self.dims[s]) for s in self.symbols}
        return check_dims(self.input_specs(), full, self.key, self.multiples, self.min_dims,
                          self.max_dims)

    def dims_from_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
        """The dim sizes implied by concrete input shapes (trtexec's ``--shapes``), checked
        against the templates, each other, and the bounds and multiples."""
        return self.check_dims(dims_from_shapes(self.input_specs(), shapes, self.key))

    def shapes(self, **dims: int) -> dict[str, tuple[int, ...]]:
        """Concrete input shapes for the given dims (defaults filled in)."""
        full = self.check_dims(dims)
        return {n: tuple(full[d] if isinstance(d, str) else d for d in t)
                for n, t in self.inputs.items()}

    def alternate_dims(self) -> dict[str, int]:
        """A second valid size for every symbol, each different from its default: of the
        other parity (of size / multiple), changing every aspect ratio, never 0 or 1, within
        the declared bounds (:func:`attn_deploy.shapes.alternate_dims`). Used to prove an
        exported model is really dynamic."""
        return alternate_dims({s: self.dims[s] for s in self.symbols}, self.multiples,
                              self.min_dims, self.max_dims)


@dataclass(frozen=True)
class _Entry:
    key: str
    factory: Callable[..., nn.Module]
    title: str
    paper: str
    family: str
    export_path: str
    inputs: InputsFn
    outputs: tuple[str, ...]
    dims: Mapping[str, int]
    defaults: Mapping[str, Any]
    multiples: Mapping[str, int]
    min_dims: Callable[[Mapping[str, Any]], Mapping[str, int]] | Mapping[str, int]
    max_dims: Callable[[Mapping[str, Any]], Mapping[str, int]] | Mapping[str, int]
    input_dtypes: Mapping[str, torch.dtype]
    example: ExampleFn | None
    rtol: float
    file: str


_REGISTRY: dict[str, _Entry] = {}


def register(key: str, factory: Callable[..., nn.Module], *, title: str, paper: str,
             family: str, export_path: str, inputs: InputsFn, outputs: tuple[str, ...],
             dims: Mapping[str, int], defaults: Mapping[str, Any] | None = None,
             multiples: Mapping[str, int] | None = None, min_dims: Mapping[str, int] | None = None,
             max_dims=None, input_dtypes: Mapping[str, torch.dtype] | None = None,
             example: ExampleFn | None = None, rtol: float = 1e-5) -> None:
    """Register a block under ``key``.

    ``factory(**config)`` builds the module; ``defaults`` are the kwargs ``create(key)`` uses
    (merged over the factory's own defaults to form the config). ``inputs(config)`` returns the
    ordered shape templates. ``min_dims`` and ``max_dims`` may be callables of the config (a
    synthesizer's maximum length, a pooling rate). ``example(shapes, generator, config)`` makes inputs where random normals
    will not do (masks, lengths).
    """
    if key in _REGISTRY:
        raise AssertionError(f"block key {key!r} registered twice")
    assert family in FAMILIES, family
    assert export_path in EXPORT_PATHS, export_path
    # where the block lives: the file that defines its factory ("attn_deploy/modules/...")
    root = Path(__file__).resolve().parents[2]
    source = Path(sys.modules[factory.__module__].__file__).resolve()
    _REGISTRY[key] = _Entry(key, factory, title, paper, family, export_path, inputs,
                            tuple(outputs), MappingProxyType(dict(dims)),
                            MappingProxyType(dict(defaults or {})),
                            MappingProxyType(dict(multiples or {})),
                            min_dims or {}, max_dims or {},
                            MappingProxyType(dict(input_dtypes or {})), example, rtol,
                            source.relative_to(root).as_posix())


def _entry(key: str) -> _Entry:
    from attn_deploy.modules import load_all
    load_all()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise AttnDeployError(
            f"unknown block key {key!r}; valid keys: {', '.join(sorted(_REGISTRY))}") from None


def list_modules() -> list[str]:
    """Keys of every registered block, sorted."""
    from attn_deploy.modules import load_all
    load_all()
    return sorted(_REGISTRY)


def _config(e: _Entry, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    params = inspect.signature(e.factory).parameters
    base = {n: p.default for n, p in params.items()
            if p.default is not inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = set(kwargs) - set(params)
    if unknown and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise AttnDeployError(f"{e.key}: unknown argument(s) {sorted(unknown)}; "
                              f"accepted: {sorted(base) or 'none'}")
    return {**base, **e.defaults, **kwargs}


def _is_size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _config_shapes(e: _Entry, cfg: Mapping[str, Any], kwargs: Mapping[str, Any]
                   ) -> tuple[dict[str, Template], dict[str, int], dict[str, int]]:
    """The config's input templates and dim bounds, refused unless every template entry is a
    dim symbol of the block or an int >= 1 and every bound an int. A string config value
    would otherwise become a dim symbol (``channels="C"`` an axis named C) and a float or a
    bool a size; the constructor refuses those too, but a spec is built without constructing
    the block."""
    def culprits(seen: Any) -> str:
        named = [k for k, v in kwargs.items()
                 if v is seen or (type(v) is type(seen) and v == seen)]
        if not named:   # a size computed from a bad value (num_priors * "C", 16 * False)
            suspects = [k for k, v in kwargs.items() if v is not None and not _is_size(v)]
            named = [k for k in suspects if type(kwargs[k]) is type(seen)] or suspects
        return ", ".join(named) or "the config"

    def bounds(b) -> dict[str, Any]:
        return dict(b(cfg) if callable(b) else b)

    try:
        inputs, min_dims, max_dims = dict(e.inputs(cfg)), bounds(e.min_dims), bounds(e.max_dims)
    except AttnDeployError:
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        bad = [k for k, v in kwargs.items() if not isinstance(v, (int, str, tuple, list))
               or isinstance(v, bool)] or sorted(kwargs)
        raise AttnDeployError(f"{e.key}: {', '.join(bad)}: these values give no input shapes "
                              f"({type(exc).__name__}: {exc})") from None
    given_strings = {v for v in kwargs.values() if isinstance(v, str)}
    for name, template in inputs.items():
        for d in template:
            # a symbol equal to a given string came from the config ("channels='N'")
            symbol = isinstance(d, str) and d in e.dims and d not in given_strings
            if not symbol and not _is_size(d):
                raise AttnDeployError(
                    f"{e.key}: {culprits(d)}: expected an int >= 1 (a size), got {d!r} "
                    f"({type(d).__name__}), which would give input {name!r} the shape "
                    f"{list(template)}")
    for which, b in (("minimum", min_dims), ("maximum", max_dims)):
        for sym, v in b.items():
            if not _is_size(v):
                raise AttnDeployError(f"{e.key}: {culprits(v)}: expected an int >= 1, got "
                                      f"{v!r}, which would make the {which} of dim {sym} {v!r}")
    return inputs, min_dims, max_dims


def spec(key: str, **kwargs: Any) -> BlockSpec:
    """The spec of block ``key`` built with ``kwargs`` (defaults when none are given)."""
    e = _entry(key)
    cfg = _config(e, kwargs)
    inputs, min_dims, max_dims = _config_shapes(e, cfg, kwargs)
    return BlockSpec(key=key, title=e.title, paper=e.paper, family=e.family,
                     export_path=e.export_path, inputs=MappingProxyType(inputs),
                     outputs=e.outputs, dims=e.dims, multiples=e.multiples,
                     min_dims=MappingProxyType(dict(min_dims)),
                     max_dims=MappingProxyType(dict(max_dims)),
                     input_dtypes=e.input_dtypes, config=MappingProxyType(cfg), rtol=e.rtol,
                     file=e.file)


def spec_from_onnx(model) -> BlockSpec | None:
    """The spec of the block a file (a path or an ``onnx.ModelProto``) was exported from, read
    back from the metadata ``export_block`` writes; None for a file not exported from a block."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else \
        onnx.load(str(model), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    key = meta.get("attn_deploy_block")
    if not key:
        return None
    where = model if isinstance(model, (str, Path)) else "model"
    if key not in list_modules():  # a file from a newer version, or an edited one
        raise AttnDeployError(f"{where}: exported from block {key!r} (attn_deploy_block "
                              f"metadata), which this attn_deploy does not have; known blocks: "
                              f"{', '.join(list_modules())}")
    try:
        config = json.loads(meta.get("attn_deploy_config") or "{}")
        if not isinstance(config, dict):
            raise TypeError(f"expected a JSON object, got {config!r}")
    except (json.JSONDecodeError, TypeError) as exc:
        raise AttnDeployError(f"{where}: unreadable attn_deploy_config metadata "
                              f"({exc})") from exc
    try:
        return spec(key, **config)
    except AttnDeployError as exc:  # a config this version's block refuses: name the file
        raise AttnDeployError(f"{where}: attn_deploy_config metadata: {exc}") from None


def create(key: str, **kwargs: Any) -> nn.Module:
    """Build block ``key`` in eval mode; the config is kept on ``module.attn_deploy_config``."""
    e = _entry(key)
    cfg = _config(e, kwargs)
    try:
        module = e.factory(**cfg)
    except AttnDeployError as exc:    # say which block refused its arguments
        raise type(exc)(f"{key}: {exc}") from None
    module.eval()
    module.attn_deploy_config = {"key": key, "kwargs": dict(kwargs)}
    return module


def example_inputs(key: str, seed: int = 0, *, config: Mapping[str, Any] | None = None,
                   **dims: int) -> tuple[torch.Tensor, ...]:
    """Random inputs for ``create(key, **config)``, in ``spec(key).inputs`` order."""
    e = _entry(key)
    s = spec(key, **(config or {}))
    shapes = s.shapes(**dims)
    g = torch.Generator().manual_seed(seed)
    if e.example is not None:
        return tuple(e.example(shapes, g, s.config))
    out = []
    for name, shape in shapes.items():
        dtype = s.dtype(name)
        if not dtype.is_floating_point:
            raise AssertionError(f"{key}: input {name} is {dtype}; register an example function")
        out.append(torch.randn(shape, generator=g, dtype=dtype))
    return tuple(out)


def spec_as_dict(s: BlockSpec) -> dict[str, Any]:
    """A JSON-friendly view of a spec (for the CLI, reports and ONNX metadata)."""
    return {
        "key": s.key, "title": s.title, "paper": s.paper, "family": s.family,
        "export_path": s.export_path,
        "inputs": {n: list(t) for n, t in s.inputs.items()},
        "input_dtypes": {n: str(s.dtype(n)).replace("torch.", "") for n in s.inputs},
        "outputs": list(s.outputs), "dims": dict(s.dims), "multiples": dict(s.multiples),
        "min_dims": dict(s.min_dims), "max_dims": dict(s.max_dims),
    }
