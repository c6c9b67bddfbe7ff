"""CARAFE and criss-cross attention at deployment sizes against the machine's floor, and the
native kernels against the PyTorch references, side by side.

    python -m attn_deploy.ops.benchmark [--repeats 15] [--threads 2] [--bodies]
                                        [--markdown FILE] [--readme README.md] [--deploy-only]

Deployment sizes (issue 15): CARAFE features 1x256x64x64 -> 128x128 (k=5, G=1, s=2; CARAFE FPN)
and criss-cross attention q/k 1x64x64x64, v 1x512x64x64 (CCNet head at 512x512). For each it
times, interleaved in the same rounds: the native kernel, the PyTorch reference, the op's ONNX
function body on ONNX Runtime CPU (``--threads`` threads, spinning off), and the floor probes of
``attn_deploy.harness.floors`` (a large copy and a 2048^3 fp32 GEMM), and prints each time with
its ratio to the floor = max(bytes moved / copy rate, FLOPs / GEMM rate). ``--bodies`` adds
every candidate CARAFE body; ``--markdown`` writes the table, ``--readme`` replaces the README's
speed-table section with it.

Then, with native kernels built, the small-size comparison: the median time of the native op
and of the reference (runs interleaved, same inputs, same thread count), their ratio against the
speed-up target set per case in ``_cases`` (forward: 5x for CARAFE, 1.5x for criss-cross
attention), and the peak memory each allocates (CPU: the torch profiler's allocation tracking,
which leaves out the per-thread scratch of the criss-cross backward's CPU loops, 2*W*W floats; CUDA:
max_memory_allocated). With a CUDA device it also times the CUDA kernels and compares them
with the memory-bandwidth floor: the bytes the op must move (inputs read once, output written
once) over the measured bandwidth of a large device-to-device copy.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from attn_deploy.ops._native import load_extension, native_available


def unfold_carafe_reference(features, masks, kernel_size, group_size, scale_factor):
    """Benchmark-local CARAFE in the im2col style of mmcv's ``carafe_naive``: unfolds the k*k
    neighbourhoods and upsamples them (a k*k-expanded tensor), for the memory comparison."""
    n, c, h, w = features.shape
    k, g, s = kernel_size, group_size, scale_factor
    cols = F.unfold(features, k, padding=(k - 1) // 2).view(n, g, c // g, k * k, h, w)
    cols = cols.repeat_interleave(s, 4).repeat_interleave(s, 5)
    return (cols * masks.view(n, g, 1, k * k, h * s, w * s)).sum(3).view(n, c, h * s, w * s)


def _references():
    from attn_deploy.ops import carafe_reference, criss_cross_attention_reference
    return carafe_reference, criss_cross_attention_reference


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(fns: dict[str, Callable], device, repeats: int) -> dict[str, float]:
    """Median seconds per call (and "<name> min"); the candidates alternate so that changes in
    machine load hit all alike. Each timed call follows an untimed one of the same candidate:
    the previous candidate's idle threads (PyTorch's OpenMP workers) spin for a while after it
    returns and slowed the next call (ORT criss-cross at the deploy size: 16.4 ms after a
    PyTorch call, 13.7 ms after an ORT call)."""
    for fn in fns.values():
        fn(), fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if len(fns) > 1:
                fn()  # settle, untimed
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {**{name: statistics.median(ts) for name, ts in times.items()},
            **{f"{name} min": min(ts) for name, ts in times.items()}}


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null: kineto (C++) prints a "USDT ... profiler_start" and a
    "profiler_stop" line there for every profile, which buried the benchmark's own output."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _peak_bytes(fn: Callable, device) -> int:
    """Peak bytes allocated while fn runs, beyond what was allocated before."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile
    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:  # the trace holds the running allocation total
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    return max((e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"),
               default=0)


def _copy_bandwidth(device) -> float:
    """Bytes per second of a 256 MiB device-to-device copy (read + write)."""
    src = torch.empty(64 * 2**20, device=device)
    dst = torch.empty_like(src)
    seconds = _time_interleaved({"copy": lambda: dst.copy_(src)}, device, 20)["copy"]
    return 2 * src.numel() * src.element_size() / seconds


def _cases(ext, device, generator):
    carafe_ref, cca_ref = _references()

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(device)

    features, masks = randn(1, 64, 64, 64), randn(1, 25, 128, 128).softmax(1)
    q, k, v = randn(1, 8, 64, 64), randn(1, 8, 64, 64), randn(1, 64, 64, 64)
    carafe_args = (features, masks, 5, 1, 2)
    yield ("carafe f[1,64,64,64] k=5 G=1 s=2", 5.0,
           lambda: ext.carafe_forward(*carafe_args),
           {"carafe_reference": lambda: carafe_ref(*carafe_args),
            "unfold reference (benchmark-local)": lambda: unfold_carafe_reference(*carafe_args)},
           (features, masks), (features.new_empty(1, 64, 128, 128),))
    yield ("criss_cross_attention q/k[1,8,64,64] v[1,64,64,64]", 1.5,
           lambda: ext.criss_cross_attention_forward(q, k, v),
           {"criss_cross_attention_reference": lambda: cca_ref(q, k, v)},
           (q, k, v), (v,))
    grad = randn(1, 64, 128, 128)
    leaves = [t.detach().requires_grad_() for t in (features, masks)]
    yield ("carafe backward (same shapes)", None,
           lambda: ext.carafe_backward(grad, *carafe_args),
           {"autograd of carafe_reference": lambda: torch.autograd.grad(
               carafe_ref(*leaves, 5, 1, 2), leaves, grad)},
           (grad, features, masks), (features, masks))
    grad = randn(1, 64, 64, 64)
    cca_leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    yield ("criss_cross_attention backward (same shapes)", None,
           lambda: ext.criss_cross_attention_backward(grad, q, k, v),
           {"autograd of criss_cross_attention_reference": lambda: torch.autograd.grad(
               cca_ref(*cca_leaves), cca_leaves, grad)},
           (grad, q, k, v), (q, k, v))


def _line(name: str, seconds: float, fastest: float, peak: int) -> str:
    return (f"  {name:44s} {seconds * 1e3:9.3f} ms (min {fastest * 1e3:8.3f})"
            f"  peak {peak / 2**20:7.2f} MiB")


def run(device: torch.device, repeats: int) -> list[dict]:
    """Prints and returns one row per case: median/min times, peak bytes, ratios."""
    ext = load_extension()
    bandwidth = _copy_bandwidth(device) if device.type == "cuda" else None
    results = []
    cases = _cases(ext, device, torch.Generator().manual_seed(0))
    for title, target, native, references, reads, writes in cases:
        candidates = {"native": native, **references}
        times = _time_interleaved(candidates, device, repeats)
        peaks = {name: _peak_bytes(fn, device) for name, fn in candidates.items()}
        print(f"\n[{device.type}] {title}  (threads={torch.get_num_threads()}, "
              f"median of {repeats})")
        print(_line("native", times["native"], times["native min"], peaks["native"]))
        for name in references:
            speedup = times[name] / times["native"]
            verdict = "" if target is None else \
                f"; target >= {target}x {'met' if speedup >= target else 'NOT met'}"
            print(_line(name, times[name], times[name + " min"], peaks[name]))
            print(f"  {'':44s} -> native {speedup:.1f}x faster (medians), "
                  f"{peaks[name] / max(peaks['native'], 1):.1f}x less memory{verdict}")
        row = {"case": title, "device": device.type, "times_s": times, "peak_bytes": peaks}
        if bandwidth is not None:
            moved = sum(t.numel() * t.element_size() for t in reads + writes)
            floor = moved / bandwidth
            print(f"  bandwidth floor {floor * 1e3:.3f} ms ({moved / 2**20:.1f} MiB at "
                  f"{bandwidth / 1e9:.0f} GB/s copy): native takes "
                  f"{times['native'] / floor:.1f}x the floor")
            row.update(floor_s=floor, copy_bandwidth=bandwidth)
        results.append(row)
    return results


DEPLOY_GOALS = {"native": 3.0, "ORT": {"carafe": 15.0, "criss_cross": 3.0}}


@dataclass
class DeployCase:
    """One op at a deployment size: its inputs and the callables to time."""
    key: str
    title: str
    bytes_moved: float
    flops: float
    native: Callable | None
    reference: Callable
    ort: dict[str, Callable]  # ONNX body name -> run


def _ort_session(proto, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # interleaved
    return ort.InferenceSession(proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _deploy_cases(ext, threads: int, bodies: bool) -> list[DeployCase]:
    from attn_deploy.harness.floors import carafe_cost, criss_cross_cost
    from attn_deploy.ops.onnx_carafe import BODIES, body_kind, carafe_function
    from attn_deploy.ops.onnx_criss_cross import criss_cross_function
    from attn_deploy.ops.onnx_functions import single_node_model

    carafe_ref, cca_ref = _references()
    gen = torch.Generator().manual_seed(0)
    cfg = (5, 1, 2)
    features = torch.randn(1, 256, 64, 64, generator=gen)
    masks = torch.rand(1, 25, 128, 128, generator=gen).softmax(1)
    feed = {"features": features.numpy(), "masks": masks.numpy()}
    attrs = dict(zip(("kernel_size", "group_size", "scale_factor"), cfg))
    kinds = sorted(BODIES, key=lambda kind: kind != body_kind(*cfg)) if bodies \
        else [body_kind(*cfg)]
    carafe_ort = {}
    for kind in kinds:
        session = _ort_session(single_node_model(carafe_function([cfg], 18, kind=kind), attrs),
                               threads)
        carafe_ort[kind] = (lambda s: lambda: s.run(None, feed))(session)
    q, k, v = (torch.randn(1, c, 64, 64, generator=gen) for c in (64, 64, 512))
    cca_feed = {"query": q.numpy(), "key": k.numpy(), "value": v.numpy()}
    cca_session = _ort_session(single_node_model(criss_cross_function(18)), threads)
    return [
        DeployCase("carafe", "CARAFE features 1x256x64x64 -> 128x128, k=5, G=1, s=2 "
                   "(CARAFE FPN)", *carafe_cost(1, 256, 64, 64, *cfg),
                   (lambda: ext.carafe_forward(features, masks, *cfg)) if ext else None,
                   lambda: carafe_ref(features, masks, *cfg), carafe_ort),
        DeployCase("criss_cross", "criss-cross q/k 1x64x64x64, v 1x512x64x64 "
                   "(CCNet head at 512x512)", *criss_cross_cost(1, 64, 512, 64, 64),
                   (lambda: ext.criss_cross_attention_forward(q, k, v)) if ext else None,
                   lambda: cca_ref(q, k, v),
                   {"criss_cross": lambda: cca_session.run(None, cca_feed)}),
    ]


def _ratio_cell(seconds: float | None, floor: float) -> str:
    if seconds is None:
        return "not built"
    return f"{seconds * 1e3:.1f} ms ({seconds / floor:.1f}x)"


def run_deploy(repeats: int, threads: int, bodies: bool = False) -> dict:
    """Times the deployment cases and the floor probes interleaved; returns {"rates", "rows",
    "markdown"}: one row per case with floor and median seconds per runtime."""
    from attn_deploy.harness.floors import MachineRates, copy_probe, gemm_probe
    from attn_deploy.ops._native import native_available

    ext = load_extension() if native_available()["cpu"] else None
    cases = _deploy_cases(ext, threads, bodies)
    copy, copy_bytes = copy_probe()
    gemm, gemm_flops = gemm_probe()
    fns = {"copy probe": copy, "gemm probe": gemm}
    for case in cases:
        if case.native is not None:
            fns[f"{case.key} native"] = case.native
        fns[f"{case.key} reference"] = case.reference
        fns.update({f"{case.key} ORT {kind}": fn for kind, fn in case.ort.items()})
    times = _time_interleaved(fns, torch.device("cpu"), repeats)
    rates = MachineRates(copy_bytes / times["copy probe"], gemm_flops / times["gemm probe"],
                         torch.get_num_threads())
    rows = []
    for case in cases:
        floor = rates.floor_s(case.bytes_moved, case.flops)
        ort = {kind: times[f"{case.key} ORT {kind}"] for kind in case.ort}
        rows.append({"case": case.key, "title": case.title, "floor_s": floor,
                     "bytes": case.bytes_moved, "flops": case.flops,
                     "native_s": times.get(f"{case.key} native"),
                     "reference_s": times[f"{case.key} reference"], "ort_s": ort})
    return {"rates": rates, "rows": rows, "markdown": deploy_markdown(rates, rows, repeats,
                                                                       threads)}


def deploy_markdown(rates, rows: list[dict], repeats: int, threads: int) -> str:
    """The speed table (Markdown): floor, native, reference, ORT per case, with ratios."""
    lines = [f"Measured by `python -m attn_deploy.ops.benchmark --threads {threads}` (medians "
             f"of {repeats} interleaved rounds, each timed call after an untimed one of the same "
             f"runtime, ORT CPU with {threads} threads and spinning off): "
             f"{rates.describe()}; floor = max(bytes moved / copy rate, FLOPs / GEMM rate).",
             "",
             "| case | floor | native | reference | ORT (custom node via its local function) | "
             "goals |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        floor = row["floor_s"]
        first, *others = row["ort_s"].items()
        ort = _ratio_cell(first[1], floor)
        if others:
            ort += " [" + ", ".join(f"{kind} body: {_ratio_cell(t, floor)}"
                                     for kind, t in others) + "]"
        goal = (f"native <= {DEPLOY_GOALS['native']:.0f}x, "
                f"ORT <= {DEPLOY_GOALS['ORT'][row['case']]:.0f}x")
        lines.append(f"| {row['title']} | {floor * 1e3:.1f} ms | "
                     f"{_ratio_cell(row['native_s'], floor)} | "
                     f"{_ratio_cell(row['reference_s'], floor)} | {ort} | {goal} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch and ONNX Runtime CPU threads (all sides; default 2)")
    parser.add_argument("--bodies", action="store_true",
                        help="also time every candidate ONNX body of CARAFE")
    parser.add_argument("--markdown", help="write the deployment-size table to this file")
    parser.add_argument("--readme", help="replace this README's speed-table section with it")
    parser.add_argument("--deploy-only", action="store_true",
                        help="only the deployment sizes (skip the native-vs-reference section)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    available = native_available()
    print(f"native ops: {available}")
    deploy = run_deploy(args.repeats, args.threads, args.bodies)
    print("\n" + deploy["markdown"])
    if args.markdown:
        from attn_deploy.atomic_write import atomic_write_text
        print(f"wrote {atomic_write_text(args.markdown, deploy['markdown'])}")
    if args.readme:
        from attn_deploy.harness.report import SPEED_MARKERS, update_readme_section
        if not update_readme_section(args.readme, SPEED_MARKERS,
                                     deploy["markdown"].splitlines()):
            print(f"{args.readme}: no {SPEED_MARKERS[0]} ... {SPEED_MARKERS[1]} section")
            return 1
        print(f"updated {args.readme}")
    if args.deploy_only:
        return 0
    if not available["cpu"]:
        print("native kernels unavailable; nothing to compare")
        return 1
    run(torch.device("cpu"), args.repeats)
    if available["cuda"]:
        run(torch.device("cuda"), args.repeats)
    else:
        print("\nno CUDA device (or no CUDA build): CUDA timings skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
