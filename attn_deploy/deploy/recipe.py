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
    allow_nonfinite = false                                # NaN/Inf in outputs fail unless true

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
Unknown tables or keys are refused (a typo must not silently fall back to a default), and so
is a value of the wrong type or outside its fixed set (``deployable = "false"``, ``opset = 18.9``,
``precision = "fp64"``, ``multiples = { H = 0 }``): one line naming the key, never a coercion.

A recipe is code, to be trusted like code: ``factory`` is imported and called exactly as
``--model`` does, so run only recipes whose factory module you would run yourself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from attn_deploy.deploy.checkpoint import CheckpointOptions
from attn_deploy.deploy.input_args import inputs_from_templates
from attn_deploy.errors import AttnDeployError
from attn_deploy.export.flavors import FLAVORS
from attn_deploy.harness.compare import TOLERANCES
from attn_deploy.shapes import InputSpec, check_dims

# Fixed value sets: validation precisions are those with a default tolerance.
_VALIDATE_PRECISIONS = tuple(TOLERANCES)
_ENGINE_PRECISIONS = ("fp32", "fp16")

_SCHEMA: dict[str, set[str]] = {
    "model": {"factory", "kwargs", "checkpoint", "checkpoint_key", "ema", "checkpoint_prefix",
              "allow_unexpected_keys", "deployable"},
    "inputs": set(),  # free-form: input names
    "dtypes": set(),
    "export": {"output", "outputs", "opset", "flavor", "dims", "multiples", "min_dims",
               "max_dims"},
    "validate": {"shapes", "runtimes", "precision", "tolerances", "seed", "allow_nonfinite"},
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
    allow_nonfinite: bool = False

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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_map(value: Any, where: str) -> dict[str, int]:
    """A table of sizes: integers >= 1 (a size or a multiple of 0 or below means nothing)."""
    if not isinstance(value, Mapping) or not all(_is_int(v) and v >= 1 for v in value.values()):
        raise AttnDeployError(f"{where}: expected a table of integers >= 1 such as "
                              f"{{ H = 64, W = 64 }}, got {value!r}")
    return dict(value)


def _typed(table: Mapping, key: str, kind: type | tuple, what: str, where: str,
           default: Any = None, choices: tuple | None = None) -> Any:
    """``table[key]`` if present (else ``default``), checked to be of ``kind`` (bool is never
    an int here) and, with ``choices``, one of them."""
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and choices is not None:
        ok = value in choices
    if not ok:
        expected = f"one of {list(choices)}" if choices is not None else what
        raise AttnDeployError(f"{where}: {key}: expected {expected}, got {value!r}")
    return value


def _str_list(table: Mapping, key: str, where: str, choices: tuple | None = None
              ) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    bad = not isinstance(value, list) or not all(isinstance(v, str) for v in value) or \
        (choices is not None and not set(value) <= set(choices))
    if bad:
        known = f" from {list(choices)}" if choices is not None else ""
        raise AttnDeployError(f"{where}: {key}: expected a list of names{known}, got {value!r}")
    return list(value)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AttnDeployError(f"recipe {str(path)!r} is not UTF-8 text (byte "
                              f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise AttnDeployError(f"recipe {str(path)!r} cannot be read: {exc.strerror}") from None


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
        data = tomllib.loads(_read_text(path))
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
    if not isinstance(export.get("output"), str) or not export["output"]:
        raise AttnDeployError(f"{where}: [export] output = \"path/to/model.onnx\" is required")
    unknown_dtypes = sorted(set(tables["dtypes"]) - set(tables["inputs"]))
    if unknown_dtypes:
        raise AttnDeployError(f"{where}: [dtypes] names {unknown_dtypes}, which are not inputs; "
                              f"[inputs] has {sorted(tables['inputs'])}")
    inputs = inputs_from_templates(tables["inputs"], tables["dtypes"])
    if not inputs:
        raise AttnDeployError(f"{where}: [inputs] must name at least one input")
    w_model, w_export, w_validate = (f"{where} [{t}]" for t in ("model", "export", "validate"))
    kwargs = _typed(model, "kwargs", dict, "a table of keyword arguments", w_model, {})
    checkpoint = _typed(model, "checkpoint", str, "a path string", w_model)
    deployable = _typed(model, "deployable", bool, "true or false", w_model, True)
    output_names = _str_list(export, "outputs", w_export)
    opset = _typed(export, "opset", int, "an integer (18 to 23)", w_export)
    flavor = _typed(export, "flavor", str, "", w_export, "default", FLAVORS)
    runtimes = _str_list(validate, "runtimes", w_validate, _runtime_names())
    precision = _typed(validate, "precision", str, "", w_validate, "fp32", _VALIDATE_PRECISIONS)
    seed = _typed(validate, "seed", int, "an integer >= 0", w_validate, 0)
    if seed < 0:
        raise AttnDeployError(f"{w_validate}: seed: expected an integer >= 0, got {seed!r}")
    tolerances = _tolerances(validate.get("tolerances", {}), f"{w_validate} tolerances")
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
    if trt is not None:
        w_trt = f"{where} [tensorrt]"
        if not isinstance(trt.get("engine"), str) or not trt["engine"]:
            raise AttnDeployError(f"{w_trt}: engine = \"path/to/model.engine\" is required "
                                  "when the table is present")
        _typed(trt, "precision", str, "", w_trt, "fp32", _ENGINE_PRECISIONS)
        for key in ("min", "opt", "max"):
            if key in trt:
                _int_map(trt[key], f"{w_trt} {key}")
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
        dims=dims, shapes=shapes, kwargs=dict(kwargs),
        checkpoint=Path(checkpoint) if checkpoint else None, checkpoint_options=options,
        deployable=deployable,
        output_names=output_names, opset=opset, flavor=flavor, multiples=multiples,
        min_dims=_int_map(export.get("min_dims", {}), f"{where} [export] min_dims"),
        max_dims=_int_map(export.get("max_dims", {}), f"{where} [export] max_dims"),
        runtimes=runtimes, precision=precision, tolerances=tolerances, seed=seed, tensorrt=trt,
        quantize=quantize,
        allow_nonfinite=_typed(validate, "allow_nonfinite", bool, "true or false", w_validate,
                               False))


def _runtime_names() -> tuple[str, ...]:
    from attn_deploy.backends import RUNTIMES
    return RUNTIMES


def _tolerances(value: Any, where: str) -> dict[str, float]:
    """{precision: relative L2 tolerance > 0}; the keys are the validation precisions."""
    ok = isinstance(value, Mapping) and set(value) <= set(_VALIDATE_PRECISIONS) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf")
        for v in value.values())
    if not ok:
        raise AttnDeployError(f"{where}: expected a table of tolerances > 0 per precision "
                              f"{list(_VALIDATE_PRECISIONS)} such as {{ fp32 = 1e-5 }}, "
                              f"got {value!r}")
    return {k: float(v) for k, v in value.items()}
