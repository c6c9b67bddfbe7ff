"""Export recipes: a TOML file that says how to export, validate and build one model.

    [model]
    factory = "attn_deploy.deploy.reference_networks:fpn_carafe_resnet"  # package.module:callable
    kwargs = { out_channels = 256 }                        # optional
    checkpoint = "epoch_12.pth"                            # optional: a state_dict or a training
                                                           # checkpoint (mmengine, Lightning, ...)
    checkpoint_key = "ema_state_dict"                      # optional: the entry with the weights
    ema = false                                            # optional: take the EMA weights
    checkpoint_prefix = "model."                           # optional: strip exactly this prefix
    allow_unexpected_keys = true                           # optional: ignore (listed) extra keys
    deployable = true                                      # swap non-exportable layers (default)

    [inputs]                                               # name -> shape template
    image = ["N", 3, "H", "W"]                             # ints fixed, names dynamic
    [dtypes]                                               # optional, default float32
    image = "float32"

    [export]
    output = "build/fpn.onnx"                              # relative to the working directory
    outputs = ["p2", "p3", "p4", "p5", "p6"]               # output names (default output[_i])
    opset = 18
    flavor = "default"                                     # default | tensorrt | plain
    dims = { N = 2, H = 128, W = 192 }                     # example sizes for the export
    multiples = { H = 64, W = 64 }                         # optional: sizes must be multiples
                                                           # (also min_dims, max_dims)

    [validate]
    shapes = [{ N = 2, H = 128, W = 192 }, { N = 1, H = 320, W = 128 }]   # two or more
    runtimes = ["ort-cpu", "onnx-reference", "tensorrt"]  # optional; absent ones are skipped
    precision = "fp32"
    tolerances = { fp32 = 1e-5, fp16 = 1e-2 }              # relative L2 per precision

    [quantize]                                             # optional: int8 Q/DQ file
    output = "build/ccnet_small.int8.onnx"
    calibration = "calib/"          # .npz/.npy folder, "package.module:function", or "random"
    samples = 32                                           # at most this many (random: this many)
    method = "minmax"                                      # minmax | entropy | percentile
    runtimes = ["ort-cpu"]                                 # int8 validation, held-out inputs

    [tensorrt]                                             # optional: engine where TensorRT is
    engine = "build/fpn.engine"
    precision = "fp16"                                     # fp32 | fp16
    min = { N = 1, H = 64, W = 64 }                        # optimization profile per symbol
    opt = { N = 2, H = 832, W = 1216 }
    max = { N = 4, H = 1344, W = 1344 }

A model whose export needs sizes of a given multiple (a branch on the sizes, such as an FPN that
crops odd levels) says so in ``multiples``; every size in the recipe is checked against it.
Unknown tables or keys are refused (a typo must not silently fall back to a default).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from attn_deploy.deploy.checkpoint import CheckpointOptions
from attn_deploy.deploy.input_args import InputSpec, check_dims, inputs_from_templates
from attn_deploy.errors import AttnDeployError

_SCHEMA: dict[str, set[str]] = {
    "model": {"factory", "kwargs", "checkpoint", "checkpoint_key", "ema", "checkpoint_prefix",
              "allow_unexpected_keys", "deployable"},
    "inputs": set(),  # free-form: input names
    "dtypes": set(),
    "export": {"output", "outputs", "opset", "flavor", "dims", "multiples", "min_dims",
               "max_dims"},
    "validate": {"shapes", "runtimes", "precision", "tolerances", "seed"},
    "tensorrt": {"engine", "precision", "min", "opt", "max"},
    "quantize": {"output", "calibration", "samples", "method", "runtimes"},
}
_REQUIRED = ("model", "inputs", "export", "validate")


@dataclass
class Recipe:
    path: Path
    factory: str
    inputs: list[InputSpec]
    output: Path
    dims: dict[str, int]
    shapes: list[dict[str, int]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    checkpoint_options: CheckpointOptions = field(default_factory=CheckpointOptions)
    deployable: bool = True
    output_names: list[str] | None = None
    opset: int | None = None
    flavor: str = "default"
    multiples: dict[str, int] = field(default_factory=dict)
    min_dims: dict[str, int] = field(default_factory=dict)
    max_dims: dict[str, int] = field(default_factory=dict)
    runtimes: list[str] | None = None
    precision: str = "fp32"
    tolerances: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    tensorrt: dict[str, Any] | None = None
    quantize: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    def rtol(self, precision: str | None = None) -> float | None:
        return self.tolerances.get(precision or self.precision)


def _table(data: Mapping, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise AttnDeployError(f"{where}: [{key}] must be a table, got {type(value).__name__}")
    return dict(value)


def _int_map(value: Any, where: str) -> dict[str, int]:
    if not isinstance(value, Mapping) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        raise AttnDeployError(f"{where}: expected a table of integers such as "
                              f"{{ H = 64, W = 64 }}, got {value!r}")
    return dict(value)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe; every problem is an AttnDeployError naming the key."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the tomli backport (a dependency there)
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise AttnDeployError(f"recipe {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AttnDeployError(f"recipe {str(path)!r} is not valid TOML: {exc}") from None
    where = f"recipe {path.name}"
    unknown = sorted(set(data) - set(_SCHEMA))
    missing = [k for k in _REQUIRED if k not in data]
    if unknown or missing:
        raise AttnDeployError(f"{where}: tables must be {sorted(_SCHEMA)}; unknown {unknown}, "
                              f"missing {missing}")
    tables = {k: _table(data, k, where) for k in _SCHEMA}
    for key, allowed in _SCHEMA.items():
        extra = sorted(set(tables[key]) - allowed) if allowed else []
        if extra:
            raise AttnDeployError(f"{where}: unknown key(s) {extra} in [{key}]; "
                                  f"known: {sorted(allowed)}")
    model, export, validate = tables["model"], tables["export"], tables["validate"]
    if not isinstance(model.get("factory"), str):
        raise AttnDeployError(f"{where}: [model] factory = \"package.module:callable\" is "
                              "required")
    if not isinstance(export.get("output"), str):
        raise AttnDeployError(f"{where}: [export] output = \"path/to/model.onnx\" is required")
    inputs = inputs_from_templates(tables["inputs"], tables["dtypes"])
    if not inputs:
        raise AttnDeployError(f"{where}: [inputs] must name at least one input")
    multiples = _int_map(export.get("multiples", {}), f"{where} [export] multiples")
    dims = check_dims(inputs, _int_map(export.get("dims", {}), f"{where} [export] dims"),
                      f"{where} [export] dims", multiples)
    shapes = validate.get("shapes")
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise AttnDeployError(f"{where}: [validate] shapes must list two or more size tables "
                              "(the second proves the dynamic axes), got "
                              f"{shapes!r}")
    shapes = [check_dims(inputs, _int_map(s, f"{where} [validate] shapes"),
                         f"{where} [validate] shapes", multiples) for s in shapes]
    checkpoint = model.get("checkpoint")
    for key, kind in (("checkpoint_key", str), ("checkpoint_prefix", str), ("ema", bool),
                      ("allow_unexpected_keys", bool)):
        if key in model and not isinstance(model[key], kind):
            raise AttnDeployError(f"{where}: [model] {key} must be a {kind.__name__}, got "
                                  f"{model[key]!r}")
        if key in model and checkpoint is None:
            raise AttnDeployError(f"{where}: [model] {key} needs a checkpoint")
    options = CheckpointOptions(model.get("checkpoint_key"), model.get("ema", False),
                                model.get("checkpoint_prefix"),
                                model.get("allow_unexpected_keys", False))
    trt = tables["tensorrt"] or None
    if trt is not None and not isinstance(trt.get("engine"), str):
        raise AttnDeployError(f"{where}: [tensorrt] engine = \"path/to/model.engine\" is "
                              "required when the table is present")
    quantize = tables["quantize"] or None
    if quantize is not None:
        for key in ("output", "calibration"):
            if not isinstance(quantize.get(key), str):
                raise AttnDeployError(f"{where}: [quantize] {key} = \"...\" is required when "
                                      "the table is present (calibration: a folder, "
                                      "package.module:function, or \"random\")")
        samples = quantize.get("samples", 32)
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise AttnDeployError(f"{where}: [quantize] samples must be a positive integer, "
                                  f"got {samples!r}")
    return Recipe(
        path=path, factory=model["factory"], inputs=inputs, output=Path(export["output"]),
        dims=dims, shapes=shapes, kwargs=dict(model.get("kwargs", {})),
        checkpoint=Path(checkpoint) if checkpoint else None, checkpoint_options=options,
        deployable=bool(model.get("deployable", True)),
        output_names=list(export["outputs"]) if "outputs" in export else None,
        opset=export.get("opset"), flavor=export.get("flavor", "default"),
        multiples=multiples,
        min_dims=_int_map(export.get("min_dims", {}), f"{where} [export] min_dims"),
        max_dims=_int_map(export.get("max_dims", {}), f"{where} [export] max_dims"),
        runtimes=validate.get("runtimes"), precision=validate.get("precision", "fp32"),
        tolerances={k: float(v) for k, v in validate.get("tolerances", {}).items()},
        seed=int(validate.get("seed", 0)), tensorrt=trt, quantize=quantize)
