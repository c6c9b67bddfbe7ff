"""``attn-deploy export --model ...`` and ``attn-deploy export --recipe ...``: the command-line
side of :mod:`attn_deploy.deploy.pipeline` (argument checks, the summary it prints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from attn_deploy.cli.result_options import check_result_paths, finish, verdict, with_required
from attn_deploy.deploy.input_args import inputs_from_args
from attn_deploy.errors import AttnDeployError
from attn_deploy.shapes import alternate_dims, check_dims, parse_symbol_ints, shapes_to_dims

# export options that only mean something for a registered block
_BLOCK_ONLY = ("static", "dims")
# options that only mean something with --model
_MODEL_ONLY = ("kwargs", "checkpoint", "checkpoint_key", "ema", "checkpoint_prefix",
               "allow_unexpected_keys", "input", "dynamic", "multiple", "output_names",
               "shapes", "engine", "engine_precision")
# options that only mean something with --checkpoint
_CHECKPOINT_ONLY = ("checkpoint_key", "ema", "checkpoint_prefix", "allow_unexpected_keys")


def _refuse(args, names, why: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) not in
             (None, False, [])]
    if given:
        raise AttnDeployError(f"{', '.join(given)}: {why}")


def check_block_args(args) -> None:
    """``export KEY``: refuse the options that only mean something with --model/--recipe."""
    _refuse(args, _MODEL_ONLY + ("keep_layers", "runtimes", "no_validate", "json",
                                 "junit_xml", "require", "allow_nonfinite"),
            "only with --model or --recipe (export KEY exports the block; validate it with "
            "`attn-deploy validate`)")


def export_user_model(args, progress: Callable[[str], None],
                      print_validation: Callable) -> int:
    """Run ``export --model`` or ``export --recipe``; returns the exit code."""
    from attn_deploy.deploy.checkpoint import CheckpointOptions, load_checkpoint
    from attn_deploy.deploy.engine_step import engine_profile
    from attn_deploy.deploy.pipeline import deploy_model, run_recipe
    from attn_deploy.deploy.recipe import load_recipe
    from attn_deploy.deploy.user_model import build_model

    if args.key:
        raise AttnDeployError(f"export: give a block KEY ({args.key!r}) or --model/--recipe, "
                              "not both")
    _refuse(args, _BLOCK_ONLY, "only for a registered block KEY")
    if args.no_validate:
        _refuse(args, ("json", "junit_xml", "require"), "results of a validation; leave out "
                "--no-validate")
    check_result_paths(args)
    runtimes = with_required(args.runtimes, args.require)
    if args.recipe:
        if args.model:
            raise AttnDeployError("export: --model and --recipe exclude each other (the "
                                  "recipe names its model)")
        _refuse(args, _MODEL_ONLY, "a recipe says this itself; edit the recipe")
        recipe = load_recipe(args.recipe)
        progress(f"recipe {recipe.path}: {recipe.factory}")
        result = run_recipe(recipe, output=args.output, runtimes=runtimes,
                            validate=not args.no_validate, progress=progress,
                            allow_nonfinite=args.allow_nonfinite or None)
        if result.checkpoint is not None:
            print(result.checkpoint)
    else:
        if not args.output:
            raise AttnDeployError("export --model: -o/--output FILE is required")
        try:
            kwargs = json.loads(args.kwargs) if args.kwargs else {}
        except json.JSONDecodeError as exc:
            raise AttnDeployError(f"--kwargs {args.kwargs!r} is not JSON: {exc}") from None
        if not isinstance(kwargs, dict):
            raise AttnDeployError(f"--kwargs: expected a JSON object, got {args.kwargs!r}")
        inputs, dims = inputs_from_args(args.input, args.dynamic)
        multiples = parse_symbol_ints(args.multiple, "--multiple")
        unknown = sorted(set(multiples) - set(dims))
        if unknown:
            raise AttnDeployError(f"--multiple names {unknown}, which no --dynamic axis uses; "
                                  f"symbols: {sorted(dims)}")
        dims = check_dims(inputs, dims, "--input sizes", multiples)
        shapes = shapes_to_dims(inputs, args.shapes) if args.shapes else \
            ([dims, alternate_dims(dims, multiples)] if dims else [dims])
        if not args.checkpoint:
            _refuse(args, _CHECKPOINT_ONLY, "only with --checkpoint")
        model = build_model(args.model, kwargs)
        if args.checkpoint:
            options = CheckpointOptions(args.checkpoint_key, args.ema, args.checkpoint_prefix,
                                        args.allow_unexpected_keys)
            print(load_checkpoint(model, args.checkpoint, options))
        output = Path(args.output)
        result = deploy_model(
            model, output, inputs, dims, None if args.no_validate else shapes,
            output_names=args.output_names, swap_layers=not args.keep_layers,
            opset=args.opset, flavor=args.flavor, multiples=multiples, runtimes=runtimes,
            engine=engine_profile(args.engine or output.with_suffix(".engine"),
                                  args.engine_precision or "fp32", dims, shapes),
            metadata={"attn_deploy_model": args.model}, progress=progress,
            allow_nonfinite=args.allow_nonfinite)
    from attn_deploy.harness.validate import graph_summary

    written = result.failed_path or result.onnx_path
    nodes, custom = graph_summary(written)
    print(f"wrote {written} ({nodes} nodes"
          f"{', custom: ' + ', '.join(custom) if custom else ''}; outputs "
          f"{', '.join(result.output_names)})")
    if result.failed_path:
        print(f"validation failed: the new model is kept as {result.failed_path}; "
              f"{result.onnx_path} was left as it was"
              + (" (the previous file)" if Path(result.onnx_path).exists() else ""))
    if len(result.swaps) or result.swaps.skipped:
        print(result.swaps)
    if result.swap_check:
        print(result.swap_check)
    if result.validation is not None:
        print_validation(result.validation)
    if result.quantization is not None:
        print(result.quantization.summary())
    if result.int8 is not None:
        print_validation(result.int8)
    e = result.engine
    print(f"engine: {e.status}" + (f" {e.path}" if e.path else "")
          + (f" ({e.message.splitlines()[0][:200]})" if e.message else ""))
    if result.validation is None:
        return 0 if result.passed else 1
    code = finish([result.validation], args, "export")
    if e.status == "error":  # an engine that did not build fails like a parity failure
        code = 1
    print(verdict(code, [result.validation]))
    return code
