"""Native CARAFE and criss-cross attention kernels against the PyTorch references, side by side.

    python -m attn_deploy.ops.benchmark [--repeats 30] [--threads N]

For each case it prints the median time of the native op and of the reference (runs interleaved,
same inputs, same thread count), their ratio against the speed-up target set per case in
``_cases`` (forward: 5x for CARAFE, 1.5x for criss-cross attention), and the peak memory
each allocates (CPU: the torch profiler's allocation tracking, which leaves out the native CPU
loops' per-thread scratch of at most (H+W)*W floats; CUDA: max_memory_allocated). With
a CUDA device it also times the CUDA kernels and compares them with the memory-bandwidth floor:
the bytes the op must move (inputs read once, output written once) over the measured bandwidth of
a large device-to-device copy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
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
    machine load hit all alike."""
    for fn in fns.values():
        fn(), fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {**{name: statistics.median(ts) for name, ts in times.items()},
            **{f"{name} min": min(ts) for name, ts in times.items()}}


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
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (both sides)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    available = native_available()
    print(f"native ops: {available}")
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
