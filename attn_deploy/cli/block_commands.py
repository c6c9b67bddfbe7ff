"""``list``, ``export`` and ``validate``: the block and file commands."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from attn_deploy.errors import AttnDeployError


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _parse_dims(items: list[str] | None) -> dict[str, int]:
    dims = {}
    for item in items or []:
        for part in filter(None, item.split(",")):
            sym, sep, val = part.partition("=")
            if not sep or not val.strip().isdigit():
                raise AttnDeployError(f"--dims {part!r}: expected SYMBOL=INT, e.g. H=32")
            dims[sym.strip()] = int(val)
    return dims


def cmd_list(args) -> int:
    import attn_deploy as ad

    rows = [(k, s.paper, s.family, s.export_path) for k in ad.list_modules()
            for s in [ad.spec(k)]]
    widths = [max(len(r[i]) for r in rows + [("key", "paper", "family", "export")])
              for i in range(4)]
    for r in [("key", "paper", "family", "export")] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_export(args) -> int:
    from attn_deploy.cli.export_model import check_block_args, export_user_model
    from attn_deploy.export import export_block

    if args.model or args.recipe:  # any model, or a recipe: export, validate, engine
        return export_user_model(args, progress, _print_validation)
    if not args.key:
        raise AttnDeployError("export: give a block KEY, --model package.module:factory or "
                              "--recipe FILE")
    if not args.output:
        raise AttnDeployError(f"export {args.key}: -o/--output FILE is required")
    check_block_args(args)
    dims = _parse_dims(args.dims)
    path = export_block(args.key, args.output, opset=args.opset, flavor=args.flavor,
                        static=args.static, **dims)
    from attn_deploy.harness.validate import graph_summary
    nodes, custom = graph_summary(path)
    print(f"wrote {path} ({nodes} nodes{', custom: ' + ', '.join(custom) if custom else ''})")
    return 0


def _print_validation(v) -> None:
    print(f"{'runtime':<16} {'shapes':<44} {'status':<12} {'rel L2':>9} {'max abs':>9}")
    for r in v.results:
        c = r.comparison
        rel = f"{c.rel_l2:.2e}" if c else "-"
        mx = f"{c.max_abs:.2e}" if c else "-"
        print(f"{r.runtime:<16} {r.shapes[:44]:<44} {r.status:<12} {rel:>9} {mx:>9}")
        if r.status in ("fail", "error", "unavailable") and r.message:
            print(f"    {r.message.splitlines()[0][:200]}")


def cmd_validate(args) -> int:
    from attn_deploy.harness.shapes import parse_shapes
    from attn_deploy.harness.validate import validate_file

    shapes = [parse_shapes(s) for s in args.shapes or []]
    target = args.target
    if Path(target).suffix == ".onnx" or Path(target).exists():
        # An ONNX file needs no PyTorch (the runtime-only install); a block key does.
        if not shapes:
            shapes = _block_shapes_from_metadata(target)
        v = validate_file(target, shapes=shapes, runtimes=args.runtimes, progress=progress)
        _print_validation(v)
        ran = [r for r in v.results if r.status != "unavailable"]
        print("PASS" if v.passed else ("FAIL" if ran else "FAIL: no runtime ran"))
        return 0 if v.passed else 1
    from attn_deploy.harness.shapes import dims_from_shapes
    from attn_deploy.harness.validate import validate_block
    from attn_deploy.modules.registry import list_modules, spec

    if target in list_modules():
        s = spec(target)
        dims = [dims_from_shapes(s, shp) for shp in shapes] or None
        with tempfile.TemporaryDirectory(prefix="attn_deploy_validate_") as tmp:
            v = validate_block(target, runtimes=args.runtimes, dims=dims, flavor=args.flavor,
                               workdir=args.workdir or tmp, progress=progress)
        if not v.export_ok:
            print(f"export failed: {v.export_error}", file=sys.stderr)
            return 1
    else:
        raise AttnDeployError(f"{target!r} is neither a block key nor an ONNX file; "
                              f"block keys: {', '.join(list_modules())}")
    _print_validation(v)
    ran = [r for r in v.results if r.status != "unavailable"]
    print("PASS" if v.passed else ("FAIL" if ran else "FAIL: no runtime ran"))
    return 0 if v.passed else 1


def _block_shapes_from_metadata(path: str) -> list[dict]:
    """Default and alternate shapes of the block a file was exported from (its metadata)."""
    import json

    import onnx

    from attn_deploy.backends.tensorrt.profiles import recorded_shapes

    proto = onnx.load(path, load_external_data=False)
    try:
        record = recorded_shapes(proto)
    except AttnDeployError as exc:
        raise AttnDeployError(f"{path}: {exc}; give --shapes") from None
    if record is not None:  # no registry (and no torch) needed
        return [{n: tuple(v) for n, v in record[part].items()}
                for part in ("default", "alternate")]
    meta = {p.key: p.value for p in proto.metadata_props}
    key = meta.get("attn_deploy_block")
    if not key:
        raise AttnDeployError(f"{path}: not exported by attn_deploy export; give --shapes, "
                              "e.g. --shapes x:1x64x32x32")
    from attn_deploy.modules.registry import spec
    try:
        s = spec(key, **json.loads(meta.get("attn_deploy_config", "{}")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise AttnDeployError(f"{path}: unreadable attn_deploy_config metadata ({exc}); give "
                              "--shapes") from exc
    return [s.shapes(**s.dims), s.shapes(**s.alternate_dims())]


def add_commands(sub) -> None:
    from attn_deploy.backends import RUNTIMES
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
                   help="state_dict to load (read with torch.load(weights_only=True))")
    g.add_argument("--input", action="append", metavar="NAME:SHAPE[:DTYPE]",
                   help="an input and its example shape, e.g. image:2x3x64x64; repeat per input")
    g.add_argument("--dynamic", action="append", metavar="NAME:AXIS=SYMBOL[,..]",
                   help="dynamic axes, e.g. image:0=N,2=H,3=W; inputs sharing a symbol "
                        "share the size")
    g.add_argument("--multiple", action="append", metavar="SYMBOL=INT",
                   help="a dynamic size must be a multiple of INT, e.g. H=32")
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
    g.add_argument("--recipe", metavar="FILE", help="export recipe, e.g. export/ccnet_small.toml")
    g.add_argument("--runtimes", nargs="+", choices=RUNTIMES, metavar="RUNTIME",
                   help="runtimes to validate on (default: all present)")
    g.add_argument("--no-validate", action="store_true", help="export only")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("validate", help="export (for a block) and compare every runtime "
                                        "present against the reference at two or more shapes")
    p.add_argument("target", help="block key or ONNX file")
    p.add_argument("--runtimes", nargs="+", choices=RUNTIMES, metavar="RUNTIME",
                   help=f"runtimes to run (default: all present); one of {', '.join(RUNTIMES)}")
    p.add_argument("--shapes", action="append", metavar="NAME:DxDx..[,..]",
                   help="input shapes in trtexec syntax; repeat for more shapes "
                        "(default: the spec's dims and alternate dims)")
    p.add_argument("--flavor", choices=FLAVORS, default="default")
    p.add_argument("--workdir", default=None, help="where to write the exported file")
    p.set_defaults(func=cmd_validate)
