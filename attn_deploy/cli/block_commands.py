"""``list``, ``export`` and ``validate``: the block and file commands."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from attn_deploy.errors import AttnDeployError


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def cmd_list(args) -> int:
    import attn_deploy as ad

    header = ("key", "file", "family", "export", "paper")
    rows = [(k, s.file, s.family, s.export_path, s.paper) for k in ad.list_modules()
            for s in [ad.spec(k)]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_export(args) -> int:
    from attn_deploy.cli.export_model import check_block_args, export_user_model
    from attn_deploy.export import export_block
    from attn_deploy.shapes import parse_symbol_ints

    if args.model or args.recipe:  # any model, or a recipe: export, validate, engine
        return export_user_model(args, progress, _print_validation)
    if not args.key:
        raise AttnDeployError("export: give a block KEY, --model package.module:factory or "
                              "--recipe FILE")
    if not args.output:
        raise AttnDeployError(f"export {args.key}: -o/--output FILE is required")
    check_block_args(args)
    dims = parse_symbol_ints(args.dims, "--dims")
    path = export_block(args.key, args.output, opset=args.opset, flavor=args.flavor,
                        static=args.static, **dims)
    from attn_deploy.harness.validate import graph_summary
    nodes, custom = graph_summary(path)
    print(f"wrote {path} ({nodes} nodes{', custom: ' + ', '.join(custom) if custom else ''})")
    return 0


def _print_validation(v) -> None:
    q = getattr(v, "quantization", None)
    if q is not None:
        print(q.summary())
    from attn_deploy.harness.table import format_validation
    print(format_validation(v))


def cmd_validate(args) -> int:
    from attn_deploy.cli.result_options import (check_result_paths, finish, verdict,
                                                with_required)
    from attn_deploy.harness.golden import load_outputs, save_outputs, validate_golden
    from attn_deploy.harness.validate import validate_file
    from attn_deploy.shapes import parse_shapes

    check_result_paths(args)
    if args.save_outputs and args.load_outputs:
        raise AttnDeployError("--save-outputs and --load-outputs exclude each other")
    if args.load_outputs and args.shapes:
        raise AttnDeployError("--shapes: the golden outputs of --load-outputs fix the inputs "
                              "and shapes; leave --shapes out")
    golden = load_outputs(args.load_outputs) if args.load_outputs else None
    if golden is not None:
        m, versions = golden.meta, golden.meta.get("versions", {})
        print(f"golden outputs of {m.get('name')} ({m.get('reference')}, saved "
              f"{m.get('created')}; " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
              + ")")
    runtimes = with_required(args.runtimes, args.require)
    shapes = [parse_shapes(s) for s in args.shapes or []]
    target = args.target
    if args.precision != "fp32" and golden is not None:
        raise AttnDeployError("--load-outputs holds fp32 reference outputs; leave out "
                              f"--precision {args.precision}")
    if Path(target).suffix == ".onnx" or Path(target).exists():
        # An ONNX file needs no PyTorch (the runtime-only install); a block key does.
        if golden is not None:
            v = validate_golden(target, golden, runtimes=runtimes, progress=progress)
        else:
            v = validate_file(target, shapes=shapes or _block_shapes_from_metadata(target),
                              runtimes=runtimes, progress=progress, precision=args.precision,
                              reference_model=args.reference,
                              allow_nonfinite=args.allow_nonfinite)
        reference = "ort-cpu"
    else:
        v = _validate_block_target(target, args, shapes, golden, runtimes)
        reference = "torch-cpu"
    if v.export_ok:
        _print_validation(v)
    else:
        print(f"export failed: {v.export_error}", file=sys.stderr)
    if args.save_outputs and v.cases:
        save_outputs(args.save_outputs, v.cases, name=v.name, reference=reference)
        print(f"saved inputs and {reference} outputs at {len(v.cases)} shape(s) to "
              f"{args.save_outputs}")
    code = finish([v], args, "validate")
    print(verdict(code, [v]))
    return code


def _validate_block_target(target: str, args, shapes, golden, runtimes):
    from attn_deploy.harness.validate import validate_block
    from attn_deploy.modules.registry import list_modules, spec

    if target not in list_modules():
        raise AttnDeployError(f"{target!r} is neither a block key nor an ONNX file; "
                              f"block keys: {', '.join(list_modules())}")
    dims = [spec(target).dims_from_shapes(shp) for shp in shapes] or None
    with tempfile.TemporaryDirectory(prefix="attn_deploy_validate_") as tmp:
        workdir = Path(args.workdir or tmp)
        if golden is not None:
            return _validate_block_golden(target, workdir, args.flavor, golden, runtimes)
        return validate_block(target, runtimes=runtimes, dims=dims, flavor=args.flavor,
                              workdir=workdir, progress=progress, precision=args.precision,
                              allow_nonfinite=args.allow_nonfinite)


def _validate_block_golden(key: str, workdir: Path, flavor: str, golden, runtimes):
    """Export block ``key`` with the weights validate_block gives it (seed 0), so that golden
    outputs saved by ``validate KEY`` match an unchanged block, and compare with them."""
    import torch

    from attn_deploy.export import export_block
    from attn_deploy.harness.golden import check_inputs, validate_golden
    from attn_deploy.harness.validate import Validation
    from attn_deploy.modules.registry import create, spec

    check_inputs(golden, spec(key).inputs, key)  # before the export: it takes seconds
    torch.manual_seed(0)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        path = export_block(key, workdir / f"{key}.onnx", model=create(key), flavor=flavor)
    except AttnDeployError as exc:  # as in validate_block: a failed export is a failure
        return Validation(key, export_error=str(exc))
    return validate_golden(path, golden, runtimes=runtimes, progress=progress)


def _block_shapes_from_metadata(path: str) -> list[dict]:
    """Input shapes at the default and the alternate sizes of the block a file was exported
    from (the sizes it records; for older files, its block's spec), on the graph's own axes."""
    from attn_deploy.backends.tensorrt.profiles import model_inputs
    from attn_deploy.onnx_file import read_onnx_file
    from attn_deploy.shape_record import block_shape_record

    proto = read_onnx_file(path, load_weights=False)
    try:
        record = block_shape_record(proto)
    except AttnDeployError as exc:
        raise AttnDeployError(f"{path}: {exc}; give --shapes") from None
    if record is None:
        raise AttnDeployError(f"{path}: not exported by attn_deploy export; give --shapes, "
                              "e.g. --shapes x:1x64x32x32")
    return record.shape_sets(model_inputs(proto), path)


def add_commands(sub) -> None:
    from attn_deploy.backends import RUNTIMES
    from attn_deploy.cli.result_options import (add_allow_nonfinite_option, add_result_options,
                                                add_runtimes_option)
    from attn_deploy.export.flavors import FLAVORS

    p = sub.add_parser("list", help="list the registered blocks")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "export", help="export a block, any model (--model) or a recipe (--recipe) to ONNX",
        description="Export a registered block (KEY), any nn.Module (--model, then validated "
                    "against PyTorch at two shapes and built into a TensorRT engine where "
                    "TensorRT is present) or what a recipe (--recipe export/NAME.toml) says.")
    p.add_argument("key", nargs="?", default=None, help="block key (see `attn-deploy list`)")
    p.add_argument("-o", "--output", default=None,
                   help="ONNX file to write (required for KEY and --model; overrides a "
                        "recipe's output)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--static", action="store_true", help="fixed shapes (the example dims)")
    p.add_argument("--flavor", choices=FLAVORS, default="default",
                   help="custom-op flavor: default (local functions), tensorrt (plugins), "
                        "plain (standard ops only)")
    p.add_argument("--dims", action="append", metavar="SYM=INT[,...]",
                   help="example sizes, e.g. H=32,W=48 (defaults from the spec)")
    g = p.add_argument_group("any model (--model)")
    g.add_argument("--model", metavar="PACKAGE.MODULE:FACTORY",
                   help="callable returning the nn.Module, e.g. mypkg.nets:build_segmenter")
    g.add_argument("--kwargs", metavar="JSON", help="keyword arguments for the factory")
    g.add_argument("--checkpoint", metavar="FILE",
                   help="weights to load: a state_dict or a training checkpoint (mmengine, "
                        "Lightning, {'model': ...}); read without running code from the file")
    g.add_argument("--checkpoint-key", metavar="KEY",
                   help="the checkpoint entry holding the weights, e.g. ema_state_dict "
                        "(default: the top level, else state_dict, model_state_dict, model)")
    g.add_argument("--ema", action="store_true",
                   help="load the EMA weights (ema_state_dict, state_dict_ema, model_ema, ema)")
    g.add_argument("--checkpoint-prefix", metavar="PREFIX",
                   help="strip exactly this key prefix, e.g. 'model.' ('' for none; default: "
                        "the wrapper prefix that matches most keys, reported)")
    g.add_argument("--allow-unexpected-keys", action="store_true",
                   help="load a checkpoint with keys the model lacks (listed), e.g. a "
                        "detector's heads when exporting its backbone and neck")
    g.add_argument("--input", action="append", metavar="NAME:SHAPE[:DTYPE]",
                   help="an input and its example shape, e.g. image:2x3x64x64; repeat per input")
    g.add_argument("--dynamic", action="append", metavar="NAME:AXIS=SYMBOL[,..]",
                   help="dynamic axes, e.g. image:0=N,2=H,3=W; inputs sharing a symbol "
                        "share the size")
    g.add_argument("--multiple", action="append", metavar="SYMBOL=INT",
                   help="a dynamic size must be a multiple of INT, e.g. H=64,W=64 for an "
                        "FPN whose top-down path crops odd sizes (mmdet pads to 64 too)")
    g.add_argument("--output-names", nargs="+", metavar="NAME",
                   help="output names (default output, or output_0, output_1, ...)")
    g.add_argument("--shapes", action="append", metavar="NAME:DxDx..[,..]",
                   help="validation shapes, trtexec syntax; repeat (default: the example "
                        "shape and one with every dynamic size changed)")
    g.add_argument("--keep-layers", action="store_true",
                   help="do not swap non-exportable layers (see attn_deploy.deployable)")
    g.add_argument("--engine", metavar="FILE",
                   help="TensorRT engine to build where TensorRT is present (default: the "
                        "ONNX path with .engine)")
    g.add_argument("--engine-precision", choices=("fp32", "fp16"), default=None,
                   help="engine precision (default fp32)")
    g = p.add_argument_group("recipe (--recipe) and validation")
    g.add_argument("--recipe", metavar="FILE", help="export recipe, e.g. export/ccnet_resnet.toml")
    add_runtimes_option(g, "runtimes to validate on (default: all present)")
    g.add_argument("--no-validate", action="store_true", help="export only")
    add_allow_nonfinite_option(g)
    add_result_options(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("validate", help="export (for a block) and compare every runtime "
                                        "present against the reference at two or more shapes")
    p.add_argument("target", help="block key or ONNX file")
    add_runtimes_option(p, "runtimes to run (default: all present); one of "
                           f"{', '.join(RUNTIMES)}")
    p.add_argument("--shapes", action="append", metavar="NAME:DxDx..[,..]",
                   help="input shapes in trtexec syntax; repeat for more shapes "
                        "(default: the spec's dims and alternate dims)")
    p.add_argument("--flavor", choices=FLAVORS, default="default")
    p.add_argument("--workdir", default=None, help="where to write the exported file")
    add_allow_nonfinite_option(p)
    add_result_options(p, golden=True)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                   help="int8: quantize the block (seeded calibration inputs) or take FILE as "
                        "an int8 (Q/DQ) file, and judge it against fp32 on held-out inputs by "
                        "SQNR and cosine similarity (see `attn-deploy quantize`)")
    p.add_argument("--reference", metavar="FP32.onnx",
                   help="with an int8 FILE: the fp32 file it was quantized from (the reference)")
    p.set_defaults(func=cmd_validate)
