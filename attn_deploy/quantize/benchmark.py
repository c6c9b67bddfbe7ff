"""ONNX Runtime int8 against fp32 on the CPU at deployment sizes, measured side by side.

    attn-deploy quantize-bench                      # the blocks below
    attn-deploy quantize-bench --keys cbam mha --threads 2

For each block: build it at a deployment-sized config, export the fp32 file, quantize it
(calibrated on seeded inputs at that size), then time both files on ONNX Runtime CPU
interleaved (one call of each per round, thread spinning off so neither session's idle
threads steal the other's cores) and print median latencies, the int8/fp32 ratio (below 1:
int8 is faster) and the int8 file's SQNR on a held-out input. A benchmark, not a test: the
ratios depend on the CPU (int8 kernels need VNNI/AMX on x86, dot-product on ARM).
"""
from __future__ import annotations

from pathlib import Path

# block -> (constructor config, dims): feature maps of a 512x512 image at stride 8 (64x64,
# 256 channels), quarter size for the blocks whose attention is quadratic in H*W, and a
# 256-token sequence of width 256.
DEPLOY_SIZES: dict[str, tuple[dict, dict]] = {
    "cbam": ({"channels": 256}, {"N": 1, "H": 64, "W": 64}),
    "se": ({"channels": 256}, {"N": 1, "H": 64, "W": 64}),
    "cca": ({"channels": 256}, {"N": 1, "H": 64, "W": 64}),
    "carafe": ({"channels": 256}, {"N": 1, "H": 64, "W": 64}),
    "non_local": ({"channels": 256}, {"N": 1, "H": 32, "W": 32}),
    "danet": ({"channels": 256}, {"N": 1, "H": 32, "W": 32}),
    "mha": ({"dim": 256, "num_heads": 8}, {"N": 1, "L": 256}),
}


def _runner(path: Path, name: str, threads: int):
    from attn_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner

    class NoSpinRunner(OnnxRuntimeRunner):
        """ONNX Runtime CPU with intra- and inter-op spinning off (runners are interleaved)."""

        def _activate(self) -> None:
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.intra_op_num_threads = self.threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=["CPUExecutionProvider"])

    r = NoSpinRunner(path, threads=threads)
    r.name = name
    return r


def bench_block(key: str, workdir: Path, threads: int = 0, samples: int = 4,
                repeats: int = 30) -> dict:
    """fp32 and int8 medians (ms), their ratio and the int8 SQNR for block ``key``."""
    import torch

    from attn_deploy.export import export_block
    from attn_deploy.harness.bench import bench_runners
    from attn_deploy.modules.registry import create, example_inputs, spec
    from attn_deploy.quantize.accuracy import measure_accuracy
    from attn_deploy.quantize.block_quantization import quantize_block_file

    config, dims = DEPLOY_SIZES[key]
    torch.manual_seed(0)
    model = create(key, **config)
    fp32 = export_block(key, workdir / f"{key}.onnx", model=model, **dims)
    q = quantize_block_file(key, fp32, workdir / f"{key}.int8.onnx", config=config,
                            samples=samples, **dims)
    s = spec(key, **config)
    feed = {n: t.numpy() for n, t in zip(s.inputs, example_inputs(key, seed=99, config=config,
                                                                  **dims))}
    runners = [_runner(fp32, "ort-cpu fp32", threads), _runner(q.path, "ort-cpu int8", threads)]
    with runners[0] as a, runners[1] as b:
        acc = measure_accuracy(b.infer(feed), a.infer(feed), "int8")
    res = bench_runners(key, runners, feed, warmup=3, repeats=repeats, min_seconds=1.0)
    fp, i8 = res.median("ort-cpu fp32"), res.median("ort-cpu int8")
    shapes = ", ".join(f"{n}:{'x'.join(map(str, a.shape))}" for n, a in feed.items())
    return {"block": key, "shapes": shapes, "fp32_ms": fp, "int8_ms": i8,
            "int8_over_fp32": (i8 / fp) if fp and i8 else None, "sqnr_db": acc.sqnr_db,
            "quantized_nodes": len(q.quantized_nodes), "errors": res.errors}


def table(rows: list[dict]) -> list[str]:
    """Markdown rows (header included) for :func:`bench_block` results."""
    lines = ["| block | shapes | fp32 ms | int8 ms | int8/fp32 | int8 SQNR dB | int8 nodes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["errors"]:
            lines.append(f"| {r['block']} | {r['shapes']} | error: {r['errors']} | | | | |")
        else:
            lines.append(f"| {r['block']} | {r['shapes']} | {r['fp32_ms']:.2f} | "
                         f"{r['int8_ms']:.2f} | {r['int8_over_fp32']:.2f} | {r['sqnr_db']:.1f} | "
                         f"{r['quantized_nodes']} |")
    return lines
