"""The sizes an exported block's file records for the runtime side (metadata
``attn_deploy_shapes``), and the shapes derived from them when the file is read.

A file written by ``export_block`` carries two records of its block, for two readers:

- ``attn_deploy_block`` + ``attn_deploy_config``: which block, built with which arguments. The
  export side (PyTorch installed) rebuilds from them the block's spec, module and example
  inputs through :func:`attn_deploy.modules.registry.spec_from_onnx` (``quantize`` calibrates
  on those inputs).
- ``attn_deploy_shapes`` (this module): per dim symbol, the default size, the multiple and the
  bounds. The runtime side (no PyTorch, so no registry: ``validate FILE``, ``bench FILE``,
  ``build-engine``) reads only this.

The sizes are facts of the spec, but the spec can be rebuilt only with the registry, hence with
PyTorch; and the spec record cannot be rebuilt from the sizes. So both are written. Where both
can be read the sizes recorded here win: they describe the file as it was exported, the
registry describes the block as it is now.

Neither repeats what the graph says itself: which input axes are dynamic, and under which
symbol, are the graph inputs' dim names (``export_onnx`` names them after the symbols; a
``--static`` export has none, whatever the spec says). The shapes to validate at (the default
sizes and the alternate sizes) and the TensorRT profile ranges are derived when the file is
read, by the same functions that derive them from a spec (:func:`attn_deploy.shapes.alternate_dims`,
:func:`attn_deploy.backends.tensorrt.profiles.symbol_ranges`).

Files written before this layout recorded derived values instead: input templates, default and
alternate shapes, and (min, opt, max) per symbol. They are still read: the default sizes are the
ranges' opt, the bounds their min and max (which gives back the same ranges), and the recorded
alternate sizes are kept as they were (their multiples were not recorded).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import alternate_dims

if TYPE_CHECKING:
    import onnx

SHAPES_KEY = "attn_deploy_shapes"

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class ShapeRecord:
    """Per dim symbol: ``dims`` the default (example) size, ``multiples``, ``min_dims`` /
    ``max_dims`` the bounds (default min 1, no max); what a ``BlockSpec`` says of its symbols.
    ``recorded_alternate``: the second sizes a file of the first layout recorded (else None:
    derived)."""

    dims: Mapping[str, int]
    multiples: Mapping[str, int] = field(default_factory=dict)
    min_dims: Mapping[str, int] = field(default_factory=dict)
    max_dims: Mapping[str, int] = field(default_factory=dict)
    recorded_alternate: Mapping[str, int] | None = None

    @classmethod
    def of_spec(cls, spec) -> "ShapeRecord":
        """The record of a ``BlockSpec`` (its symbols only)."""
        syms = spec.symbols
        return cls({s: spec.dims[s] for s in syms},
                   {s: m for s, m in spec.multiples.items() if s in syms},
                   {s: v for s, v in spec.min_dims.items() if s in syms},
                   {s: v for s, v in spec.max_dims.items() if s in syms})

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.dims)

    def alternate_dims(self) -> dict[str, int]:
        """A second valid size per symbol (see :func:`attn_deploy.shapes.alternate_dims`)."""
        if self.recorded_alternate is not None:
            return dict(self.recorded_alternate)
        return alternate_dims(self.dims, self.multiples, self.min_dims, self.max_dims)

    def to_json(self) -> str:
        return json.dumps({"dims": dict(self.dims), "multiples": dict(self.multiples),
                           "min_dims": dict(self.min_dims), "max_dims": dict(self.max_dims)},
                          sort_keys=True)

    def shape_sets(self, templates: Mapping[str, tuple], where: str) -> list[Shapes]:
        """Input shapes at the default sizes and, when an axis is dynamic, at the alternate
        sizes. ``templates``: per graph input its dims, ints and dim names (``model_inputs``)."""
        dynamic = {d for t in templates.values() for d in t if not isinstance(d, int)}
        unknown = sorted(map(str, dynamic - set(self.dims)))
        if unknown:
            raise AttnDeployError(f"{where}: dynamic dims {unknown} of its inputs have no "
                                  f"recorded size (recorded: {list(self.dims)}); give --shapes")
        sets = [dict(self.dims), self.alternate_dims()] if dynamic else [dict(self.dims)]
        return [{n: tuple(d if isinstance(d, int) else sizes[d] for d in t)
                 for n, t in templates.items()} for sizes in sets]


def read_shape_record(proto: "onnx.ModelProto") -> ShapeRecord | None:
    """The ``attn_deploy_shapes`` record of a file (either layout), or None when it has none."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if SHAPES_KEY not in meta:
        return None
    try:
        record = json.loads(meta[SHAPES_KEY])
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        if "ranges" in record and "dims" not in record:
            return _first_layout(record)
        parts = [_sizes(record.get(part, {}), part)
                 for part in ("dims", "multiples", "min_dims", "max_dims")]
    except (ValueError, KeyError, TypeError) as exc:
        raise AttnDeployError(f"unreadable {SHAPES_KEY} metadata ({exc})") from None
    return ShapeRecord(*parts)


def _first_layout(record: dict) -> ShapeRecord:
    """{"inputs", "default", "alternate", "ranges"}: ranges give the sizes and the bounds,
    the alternate shapes (through the templates) the alternate sizes."""
    ranges = {s: tuple(v) for s, v in _mapping(record["ranges"], "ranges").items()}
    if any(len(v) != 3 for v in ranges.values()):
        raise ValueError("ranges: expected [min, opt, max] per symbol")
    alternate: dict[str, int] = {}
    templates = _mapping(record["inputs"], "inputs")
    for name, shape in _mapping(record["alternate"], "alternate").items():
        for d, size in zip(templates[name], shape):
            if isinstance(d, str):
                alternate[d] = size
    if set(alternate) != set(ranges):
        raise ValueError(f"alternate: sizes for {sorted(alternate)}, ranges for {sorted(ranges)}")
    _mapping(record["default"], "default")
    return ShapeRecord(_sizes({s: v[1] for s, v in ranges.items()}, "ranges"), {},
                       _sizes({s: v[0] for s, v in ranges.items()}, "ranges"),
                       _sizes({s: v[2] for s, v in ranges.items()}, "ranges"),
                       _sizes(alternate, "alternate"))


def _mapping(value, part: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{part}: expected an object, got {type(value).__name__}")
    return value


def _sizes(value, part: str) -> dict[str, int]:
    sizes = _mapping(value, part)
    for s, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{part}: size of {s} must be an int >= 1, got {v!r}")
    return dict(sizes)


def block_shape_record(proto: "onnx.ModelProto") -> ShapeRecord | None:
    """The sizes a file records, else (a block file from before the record existed) those of
    its block's spec, read through the registry; None for a file that is neither, or where
    PyTorch (hence the registry) is absent."""
    record = read_shape_record(proto)
    if record is not None:
        return record
    try:
        from attn_deploy.modules.registry import spec_from_onnx
    except ImportError:  # the runtime-side install: the registry needs PyTorch
        return None
    spec = spec_from_onnx(proto)
    return None if spec is None else ShapeRecord.of_spec(spec)
