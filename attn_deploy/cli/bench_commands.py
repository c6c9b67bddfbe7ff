"""``bench``: latency per runtime, side by side; ``polygraphy``: reproduce a parity verdict
with NVIDIA's Polygraphy."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from attn_deploy.cli.block_commands import _block_shapes_from_metadata
from attn_deploy.errors import AttnDeployError


def _print_bench(result) -> None:
    print(f"{result.name}  {result.shapes}")
    print(f"  {'runtime':<14} {'median ms':>10} {'p90':>9} {'p99':>9} {'min':>9} "
          f"{'cold s':>8} {'memory MiB':>11}")
    for t in result.timings:
        mem = f"{t.memory_mb:.1f}" if t.memory_mb is not None else "-"
        cold = f"{t.cold_start_s:.2f}" if t.cold_start_s is not None else "-"
        print(f"  {t.runtime:<14} {t.median_ms:>10.3f} {t.p90_ms:>9.3f} {t.p99_ms:>9.3f} "
              f"{t.min_ms:>9.3f} {cold:>8} {mem:>11}")
    for rt, why in result.unavailable.items():
        print(f"  {rt:<14} not run: {why}")
    for rt, why in result.errors.items():
        print(f"  {rt:<14} error: {why}")
    ratio = result.ratio("ort-cpu")
    if ratio is not None:
        print(f"  ORT CPU / eager: {ratio:.2f}")
    if result.floor_ms:
        times = ", ".join(f"{t.runtime} {t.median_ms / result.floor_ms:.1f}x"
                          for t in result.timings)
        print(f"  floor {result.floor_ms:.3f} ms; median / floor: {times or '-'}")


def _bench_key(key, args, workdir, rates=None):
    import torch

    from attn_deploy.export import export_block
    from attn_deploy.harness.bench import bench_runners, block_runners
    from attn_deploy.harness.bench_sizes import bench_size
    from attn_deploy.harness.floors import module_cost
    from attn_deploy.modules.registry import create, example_inputs, spec
    from attn_deploy.shapes import format_shapes, parse_shapes

    size = bench_size(key, args.sizes)
    torch.manual_seed(0)
    model = create(key, **size.kwargs)
    s = spec(key, **size.kwargs)
    dims = s.dims_from_shapes(parse_shapes(args.shapes)) if args.shapes else dict(size.dims)
    path = export_block(key, Path(workdir) / f"{key}.onnx", model=model)
    inputs = example_inputs(key, seed=7, config=size.kwargs, **dims)
    feed = {n: t.numpy() for n, t in zip(s.inputs, inputs)}
    runners = block_runners(key, model, path, args.runtimes, args.precision)
    result = bench_runners(key, runners, feed, repeats=args.repeats, warmup=args.warmup,
                           shapes=format_shapes({n: a.shape for n, a in feed.items()}))
    if rates is not None:
        result.floor_ms = rates.floor_s(*module_cost(model, inputs)) * 1e3
    return result


def _bench_file(path, args):
    import numpy as np

    import onnx

    from attn_deploy.backends import availability, onnx_runner
    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.harness.bench import UnavailableRunner, bench_runners
    from attn_deploy.harness.validate import random_input
    from attn_deploy.shapes import format_shapes, parse_shapes

    shapes = parse_shapes(args.shapes) if args.shapes else _block_shapes_from_metadata(path)[0]
    metas = metadata_from_proto(onnx.load(str(path), load_external_data=False))
    missing, unknown = set(metas) - set(shapes), set(shapes) - set(metas)
    if missing or unknown:
        raise AttnDeployError(f"{Path(path).name}: shapes must name its inputs {list(metas)}; "
                              f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    rng = np.random.default_rng(7)
    feed = {n: random_input(rng, shapes[n], m.dtype) for n, m in metas.items()}
    runners = []
    for rt in args.runtimes:
        ok, why = availability(rt)
        if rt.startswith("torch-"):
            continue  # a file has no PyTorch model
        runners.append(onnx_runner(rt, path) if ok else UnavailableRunner(rt, why))
    return bench_runners(Path(path).name, runners, feed, repeats=args.repeats,
                         warmup=args.warmup, shapes=format_shapes(shapes))


def _bench_recipe(path, args, workdir):
    """A recipe's model (its checkpoint and layer swaps included) in PyTorch eager against its
    exported file, at --shapes (default: the recipe's example sizes). ONNX Runtime's threads do
    not spin: the runtimes are timed interleaved."""
    from attn_deploy.backends import TorchRunner, availability, onnx_runner
    from attn_deploy.deploy.checkpoint import load_checkpoint
    from attn_deploy.deploy.layer_swaps import deployable
    from attn_deploy.deploy.pipeline import example_tensors, export_model
    from attn_deploy.deploy.recipe import load_recipe
    from attn_deploy.deploy.user_model import build_model
    from attn_deploy.harness.bench import UnavailableRunner, bench_runners
    from attn_deploy.shapes import check_dims, format_shapes, shapes_to_dims

    recipe = load_recipe(path)
    dims = shapes_to_dims(recipe.inputs, [args.shapes])[0] if args.shapes else recipe.dims
    dims = check_dims(recipe.inputs, dims, f"--shapes {args.shapes}", recipe.multiples)
    model = build_model(recipe.factory, recipe.kwargs)
    if recipe.checkpoint is not None:
        load_checkpoint(model, recipe.checkpoint, recipe.checkpoint_options)
    if recipe.deployable:
        model, _ = deployable(model)
    onnx_path, names = export_model(
        model, Path(workdir) / f"{recipe.name}.onnx", recipe.inputs, recipe.dims,
        output_names=recipe.output_names, opset=recipe.opset, flavor=recipe.flavor,
        multiples=recipe.multiples, min_dims=recipe.min_dims, max_dims=recipe.max_dims)
    feed = {s.name: t.numpy()
            for s, t in zip(recipe.inputs, example_tensors(recipe.inputs, dims, seed=7))}
    runners = []
    for rt in args.runtimes:
        ok, why = availability(rt)
        if not ok:
            runners.append(UnavailableRunner(rt, why))
        elif rt.startswith("torch-"):
            runners.append(TorchRunner(model, {s.name: (s.dtype, s.template)
                                               for s in recipe.inputs}, names, device=rt[6:]))
        elif rt.startswith("ort-"):
            runners.append(onnx_runner(rt, onnx_path, spinning=False))
        else:
            runners.append(onnx_runner(rt, onnx_path, **(
                {"precision": args.precision} if rt == "tensorrt" else {})))
    return bench_runners(recipe.name, runners, feed, repeats=args.repeats, warmup=args.warmup,
                         shapes=format_shapes({n: a.shape for n, a in feed.items()}))


def _bench_targets(targets, args, workdir, results, rates=None) -> None:
    from attn_deploy.modules.registry import list_modules

    for i, t in enumerate(targets, 1):
        if len(targets) > 1:
            print(f"[{i}/{len(targets)}] {t}", file=sys.stderr, flush=True)
        if t in list_modules():
            results.append(_bench_key(t, args, workdir, rates))
        elif Path(t).is_file():
            results.append(_bench_file(t, args))
        else:
            raise AttnDeployError(f"{t!r} is neither a block key nor an ONNX file")
        _print_bench(results[-1])


def cmd_bench(args) -> int:
    from attn_deploy.harness.bench import settings
    from attn_deploy.harness.report import write_bench
    from attn_deploy.modules.registry import list_modules

    if sum((args.all, bool(args.target), bool(args.recipe))) != 1:
        raise AttnDeployError("bench: give a block key, an ONNX file, --recipe FILE or --all")
    if args.shapes and args.sizes != "default":
        raise AttnDeployError("bench: give --shapes or --sizes, not both")
    if args.out:
        from attn_deploy.cli.folder_args import output_folder
        output_folder(args.out, "bench --out")
    targets = list_modules() if args.all else [args.target]
    rates = None
    if not args.no_floors:
        from attn_deploy.harness.floors import measure_rates
        rates = measure_rates()
    results = []
    with tempfile.TemporaryDirectory(prefix="attn_deploy_bench_") as workdir:
        if args.recipe:
            results.append(_bench_recipe(args.recipe, args, workdir))
            _print_bench(results[-1])
        else:
            _bench_targets(targets, args, workdir, results, rates)
    if rates is not None:
        print(f"machine floors (this process): {rates.describe()}; a block's floor = "
              f"max(bytes moved / copy rate, FLOPs / GEMM rate)")
    if args.out:
        paths = write_bench(results, settings(), args.out)
        print("wrote " + ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    # 0 only when every target was timed on at least one runtime and no runtime failed
    return 0 if all(r.timings and not r.errors for r in results) else 1


def cmd_polygraphy(args) -> int:
    import torch

    from attn_deploy.export import export_block
    from attn_deploy.harness.polygraphy_check import polygraphy_compare
    from attn_deploy.modules.registry import create, example_inputs, spec

    key = args.key
    torch.manual_seed(0)
    model = create(key)
    s = spec(key)
    out = Path(args.out or tempfile.mkdtemp(prefix="attn_deploy_polygraphy_"))
    out.mkdir(parents=True, exist_ok=True)
    path = export_block(key, out / f"{key}.onnx", model=model)
    feeds, refs = [], []
    for i, dims in enumerate([dict(s.dims), s.alternate_dims()]):
        xs = example_inputs(key, seed=11 + i, **dims)
        with torch.no_grad():
            y = model(*xs)
        y = (y,) if isinstance(y, torch.Tensor) else y
        feeds.append({n: x.numpy() for n, x in zip(s.inputs, xs)})
        refs.append({n: t.numpy() for n, t in zip(s.outputs, y)})
    v = polygraphy_compare(path, feeds, refs, plugin_library=args.plugins, quiet=not args.verbose)
    print(f"Polygraphy ({', '.join(v.runners)}) vs PyTorch: {'PASS' if v else 'FAIL'}")
    print(f"reproduce with:\n  {v.command}")
    return 0 if v else 1


def add_commands(sub) -> None:
    from attn_deploy.cli.result_options import add_runtimes_option
    from attn_deploy.harness.bench import BENCH_RUNTIMES
    from attn_deploy.harness.bench_sizes import SIZES

    p = sub.add_parser("bench", help="latency per runtime, measured side by side")
    p.add_argument("target", nargs="?", help="block key or ONNX file")
    p.add_argument("--all", action="store_true", help="every registered block")
    p.add_argument("--recipe", metavar="FILE",
                   help="a recipe's model (checkpoint and swaps included), eager vs its export, "
                        "e.g. export/ccnet_resnet.toml --shapes image:1x3x512x512")
    add_runtimes_option(p, "runtimes to time (default: all but onnx-reference)",
                        default=list(BENCH_RUNTIMES))
    p.add_argument("--shapes", metavar="NAME:DxDx..", help="input shapes (default: spec dims)")
    p.add_argument("--sizes", choices=SIZES, default="default",
                   help="block sizes: the spec's default dims, or deploy (deployment sizes: "
                        "CARAFE FPN, CCNet head at 512x512, 32x32 maps, 128 tokens)")
    p.add_argument("--no-floors", action="store_true",
                   help="skip measuring the machine's floors (copy and GEMM rates)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", help="write bench.json, bench.md and plots into this folder")
    p.add_argument("--json", action="store_true", help="also print the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("polygraphy", help="reproduce a block's parity verdict with Polygraphy "
                                          "and print the equivalent `polygraphy run` command")
    p.add_argument("key", help="block key")
    p.add_argument("--plugins", help="plugin library for Polygraphy's TensorRT runner")
    p.add_argument("--out", help="folder for the model, inputs and reference outputs")
    p.add_argument("--verbose", action="store_true", help="show Polygraphy's own log")
    p.set_defaults(func=cmd_polygraphy)
