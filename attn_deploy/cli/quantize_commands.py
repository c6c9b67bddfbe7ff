"""``quantize``: post-training int8 quantization of an ONNX file to TensorRT's Q/DQ form, with
its accuracy against the fp32 file on held-out inputs."""
from __future__ import annotations

from pathlib import Path

from attn_deploy.errors import AttnDeployError


def _heldout_feeds(args, metas) -> list[dict]:
    """Held-out inputs: --holdout data, else (for a file exported from a block) seeded example
    inputs at the spec's dims and alternate dims that calibration never saw."""
    from attn_deploy.quantize.quantizer import resolve_calibration

    if args.holdout:
        return resolve_calibration(args.holdout, metas)
    s = _block_spec(args.file)
    if s is None:
        return []
    from attn_deploy.modules.registry import example_inputs
    return [{n: t.numpy() for n, t in zip(s.inputs, example_inputs(
        s.key, seed=101 + i, config=s.config, **d))}
        for i, d in enumerate([dict(s.dims), s.alternate_dims()])]


def _block_spec(path):
    """The spec of the block a file was exported from (read back by the registry from the
    file's metadata), or None: not a block file, or no PyTorch here (the runtime-side install
    quantizes user data only)."""
    try:
        from attn_deploy.modules.registry import spec_from_onnx
    except ImportError:
        return None
    return spec_from_onnx(path)


def cmd_quantize(args) -> int:
    from attn_deploy.backends.base import metadata_from_proto
    from attn_deploy.quantize.accuracy import measure_accuracy
    from attn_deploy.quantize.calibration_data import block_feeds
    from attn_deploy.quantize.quantizer import ort_session, quantize_model

    import onnx

    if not Path(args.file).is_file():
        raise AttnDeployError(f"quantize: ONNX file {args.file!r} does not exist")
    output = args.output or str(Path(args.file).with_suffix(".int8.onnx"))
    calibration = args.calibration
    if calibration is None:
        block = _block_spec(args.file)
        if block is None:
            raise AttnDeployError(f"quantize {args.file}: give --calibration DIR (a folder of "
                                  ".npz/.npy samples) or --calibration package.module:function; "
                                  "only files exported from a block calibrate on seeded "
                                  "example inputs")
        calibration = block_feeds(block.key, block.config, args.samples or 8)
    result = quantize_model(args.file, output, calibration, method=args.method,
                            exclude=args.exclude or (), samples=args.samples,
                            tensorrt=args.tensorrt)
    print(result.summary())
    metas = metadata_from_proto(onnx.load(args.file, load_external_data=False))
    heldout = _heldout_feeds(args, metas)
    passed = not result.placement_issues
    if not heldout:
        print("accuracy: not measured (give --holdout DIR or package.module:function with "
              "inputs not used for calibration)")
    else:
        ref, q = ort_session(args.file), ort_session(output)
        names = [o.name for o in ref.get_outputs()]
        for i, feed in enumerate(heldout):
            acc = measure_accuracy(dict(zip(names, q.run(names, feed))),
                                   dict(zip(names, ref.run(names, feed))), "int8")
            passed &= bool(acc)
            shapes = ", ".join(f"{n}:{'x'.join(map(str, a.shape))}" for n, a in feed.items())
            print(f"held-out {i} ({shapes}): {'PASS' if acc else 'FAIL'}")
            print("\n".join(f"  {o}" for o in acc.outputs))
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


def cmd_quantize_bench(args) -> int:
    import tempfile

    from attn_deploy.harness.bench import settings
    from attn_deploy.quantize.benchmark import bench_block, table

    env = settings()
    print(f"onnxruntime {env['onnxruntime']}, {env['machine']}, {env['cpu_count']} CPUs, "
          f"threads {args.threads or 'default'}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="attn_deploy_int8_bench_") as tmp:
        for key in args.keys:
            rows.append(bench_block(key, Path(tmp), args.threads, repeats=args.repeats))
            print(table(rows)[-1] if len(rows) > 1 else "\n".join(table(rows)), flush=True)
    return 0


def add_commands(sub) -> None:
    from attn_deploy.quantize.quantizer import METHODS

    p = sub.add_parser(
        "quantize", help="post-training int8 quantization to Q/DQ (TensorRT explicit "
                         "quantization), with SQNR/cosine accuracy on held-out inputs",
        description="Quantize FILE.onnx to int8 QuantizeLinear/DequantizeLinear pairs in "
                    "TensorRT's conventions (symmetric int8, weights per output channel, "
                    "activations per tensor) with ONNX Runtime's static quantizer, calibrated "
                    "on --calibration data (files exported from a block: seeded example "
                    "inputs). Softmax, normalisations, exponentials and attn_deploy's custom "
                    "nodes stay floating point. Then judge the int8 file against FILE on "
                    "held-out inputs (SQNR >= 20 dB and cosine >= 0.99 per output). Exit 0 "
                    "only when placement and accuracy pass.")
    p.add_argument("file", metavar="FILE.onnx")
    p.add_argument("-o", "--output", metavar="FILE.int8.onnx",
                   help="int8 file to write (default: FILE.int8.onnx)")
    p.add_argument("--calibration", metavar="DIR|PACKAGE.MODULE:FUNCTION",
                   help="a folder of .npz (one sample each, keys = input names) or .npy (one "
                        "input) files, or a function returning an iterable of feeds")
    p.add_argument("--holdout", metavar="DIR|PACKAGE.MODULE:FUNCTION",
                   help="held-out inputs for the accuracy check, in --calibration's forms "
                        "(default for block files: seeded inputs at two shapes)")
    p.add_argument("--samples", type=int, metavar="N", help="calibrate on at most N samples "
                                                            "(block files: N seeded, default 8)")
    p.add_argument("--method", choices=METHODS, default="minmax",
                   help="activation range calibration (default minmax)")
    p.add_argument("--exclude", nargs="+", metavar="NODE", help="node names to keep in float")
    p.add_argument("--tensorrt", metavar="VERSION",
                   help="TensorRT version whose Q/DQ placement rules to check (default: newest)")
    p.set_defaults(func=cmd_quantize)

    from attn_deploy.quantize.benchmark import DEPLOY_SIZES

    p = sub.add_parser(
        "quantize-bench", help="ONNX Runtime CPU: int8 against fp32 at deployment sizes",
        description="Export, quantize and time blocks at deployment sizes on ONNX Runtime CPU, "
                    "the fp32 and int8 files interleaved (thread spinning off); prints median "
                    "latencies, the int8/fp32 ratio and the int8 SQNR. A benchmark: the ratios "
                    "depend on the CPU's int8 instructions.")
    p.add_argument("--keys", nargs="+", choices=sorted(DEPLOY_SIZES), default=list(DEPLOY_SIZES))
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: default)")
    p.add_argument("--repeats", type=int, default=30)
    p.set_defaults(func=cmd_quantize_bench)
