"""``report``: export every block, validate it on every runtime present, time every runtime
against eager, and write ``reports/compat.md``/``.json``, ``bench.md``/``.json`` and the latency
plots (what ``make demo`` runs)."""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time

from attn_deploy.cli.block_commands import progress
from attn_deploy.cli.folder_args import output_folder
from attn_deploy.cli.result_options import (add_result_options, add_runtimes_option,
                                            check_result_paths, finish, with_required)
from attn_deploy.errors import AttnDeployError


def _bench(key: str, model, path, runtimes):
    from attn_deploy.harness.bench import BENCH_RUNTIMES, bench_runners, block_runners
    from attn_deploy.shapes import format_shapes
    from attn_deploy.modules.registry import example_inputs, spec

    s = spec(key, **model.attn_deploy_config["kwargs"])
    feed = {n: t.numpy() for n, t in zip(s.inputs, example_inputs(key, seed=7))}
    wanted = [r for r in (runtimes or BENCH_RUNTIMES) if r != "onnx-reference"]
    if "torch-cpu" not in wanted:
        wanted.insert(0, "torch-cpu")  # the baseline of every ratio
    return bench_runners(key, block_runners(key, model, path, wanted), feed, warmup=5,
                         repeats=30, min_seconds=0.3,
                         shapes=format_shapes({n: a.shape for n, a in feed.items()}))


def trt_check_cell(path) -> str:
    """The static TensorRT check's verdict for a file, or why it did not run."""
    try:
        from attn_deploy.trt_check.model_check import check_model
    except ImportError:
        return "not run"
    result = check_model(path)
    return "pass" if result else f"fail: {len(result.failures())} node(s)"


def _int8(key: str, model, fp32_path: str) -> dict:
    """The int8 column: quantize the exported file and judge it on ONNX Runtime CPU against
    PyTorch fp32 on held-out inputs at the spec's dims and alternate dims."""
    from attn_deploy.harness.validate import Validation
    from attn_deploy.modules.registry import spec
    from attn_deploy.quantize.block_quantization import int8_cell, validate_int8

    s = spec(key, **model.attn_deploy_config["kwargs"])
    v = validate_int8(Validation(key, fp32_path, export_ok=True), model, ["ort-cpu"],
                      [dict(s.dims), s.alternate_dims()], progress=progress)
    return int8_cell(v)


def cmd_report(args) -> int:
    import torch

    from attn_deploy.harness.report import row, write_report
    from attn_deploy.harness.validate import validate_block
    from attn_deploy.modules.registry import create, list_modules, spec

    keys = args.keys or list_modules()
    unknown = [k for k in keys if k not in list_modules()]
    if unknown:
        raise AttnDeployError(f"unknown block key(s) {unknown}; valid keys: "
                              f"{', '.join(list_modules())}")
    check_result_paths(args)
    output_folder(args.out, "report --out")
    runtimes = with_required(args.runtimes, args.require)
    rows, benches, validations, start = [], [], [], time.perf_counter()
    with contextlib.ExitStack() as stack:  # a temp folder (removed on every path) or --workdir
        workdir = args.workdir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="attn_deploy_report_"))
        for i, key in enumerate(keys, 1):
            print(f"[{i}/{len(keys)}] {key}", file=sys.stderr, flush=True)
            torch.manual_seed(0)
            model = create(key)
            v = validate_block(key, runtimes=runtimes, workdir=workdir, model=model,
                               progress=progress)
            validations.append(v)
            lat = {}
            if v.export_ok and not args.no_latency:
                benches.append(_bench(key, model, v.onnx_path, args.runtimes))
                lat = {t.runtime: t.median_ms for t in benches[-1].timings}
            s = spec(key)
            int8 = _int8(key, model, v.onnx_path) if v.export_ok and not args.no_int8 else None
            rows.append(row(v, family=s.family, export_path=s.export_path,
                            trt_check=trt_check_cell(v.onnx_path) if v.export_ok else "-",
                            latency=lat, int8=int8))
    md, js = write_report(rows, args.out)
    if benches:
        from attn_deploy.harness.bench import settings
        from attn_deploy.harness.report import write_bench
        write_bench(benches, settings(), args.out)
    if args.readme:
        from attn_deploy.harness.report import update_readme
        if not update_readme(args.readme, md):
            print(f"{args.readme}: no compat-table markers; not updated", file=sys.stderr)
    passed = sum(r["passed"] for r in rows)
    print(f"{passed}/{len(rows)} blocks pass; wrote {md} and {js} "
          f"in {time.perf_counter() - start:.0f} s")
    code = finish(validations, args, "report")
    # without --strict a failing block is reported, not fatal (what `make demo` wants)
    return 0 if code == 1 and not args.strict else code


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="validate every block and write reports/compat.md")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--keys", nargs="+", help="only these blocks")
    add_runtimes_option(p)
    p.add_argument("--workdir", help="where exported files go (default: a temp folder)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency columns")
    p.add_argument("--no-int8", action="store_true",
                   help="skip the int8 column (quantize each block, SQNR on held-out inputs)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any block fails")
    p.add_argument("--readme", help="also put the table into this README, between its "
                                    "compat-table markers")
    add_result_options(p)
    p.set_defaults(func=cmd_report)
