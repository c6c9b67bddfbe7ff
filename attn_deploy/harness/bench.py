"""Latency benchmarks across runtimes, measured side by side.

Every runtime gets the same inputs. Runners are timed interleaved (one call of each per
round), so a noisy, shared machine slows all of them alike and the ratios stay meaningful.
ONNX Runtime sessions are created with thread spinning off
(``session.intra_op.allow_spinning = "0"``, and inter-op): by default ORT's worker threads
spin-wait after each run and steal the cores from whichever runtime is timed next (eager times
measured 7 ms to 580 ms between runs with spinning on). PyTorch's OpenMP workers (GNU libgomp)
spin the same way after each parallel region, and nothing turns that off from inside the
process without slowing PyTorch itself, so each timed call follows an untimed settle call of the
same runner (criss-cross attention at 1x512x64x64 on ORT: 16.4 ms right after a PyTorch call,
13.7 ms after an ORT call, 14.2 ms after one settle call).
Cold start (session creation, engine deserialisation) is each runner's activation time,
reported apart. Memory: on the CPU, the process's resident-set growth over the baseline,
sampled while the runner is active (one process hosts every runner, so this is an upper
bound per runner); on CUDA, ``torch.cuda.max_memory_allocated`` for eager PyTorch.
"""
from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from attn_deploy.backends.base import Runner


def rss_mb() -> float | None:
    """Resident set size of this process in MiB (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class _RssSampler:
    """Samples RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak = interval, rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            now = rss_mb()
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@dataclass
class RuntimeTiming:
    runtime: str
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    repeats: int
    cold_start_s: float | None
    memory_mb: float | None = None
    memory_kind: str = ""


@dataclass
class BenchResult:
    name: str
    shapes: str
    timings: list[RuntimeTiming] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # The machine's floor for one forward (attn_deploy.harness.floors), when measured
    floor_ms: float | None = None

    def median(self, runtime: str) -> float | None:
        return next((t.median_ms for t in self.timings if t.runtime == runtime), None)

    def ratio(self, runtime: str, baseline: str = "torch-cpu") -> float | None:
        a, b = self.median(runtime), self.median(baseline)
        return None if a is None or not b else a / b

    def as_dict(self) -> dict:
        return asdict(self)


def bench_runners(name: str, runners: Sequence[Runner], feed: Mapping[str, np.ndarray], *,
                  warmup: int = 10, repeats: int = 100, min_seconds: float = 0.5,
                  shapes: str = "") -> BenchResult:
    """Activate each runner (cold start timed), warm up, then time ``repeats`` interleaved
    rounds (more until ``min_seconds`` of rounds have passed); in a round, each runner's timed
    call follows an untimed one."""
    from attn_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner

    result = BenchResult(name, shapes)
    active: list[Runner] = []
    base_rss = rss_mb()
    for r in runners:
        if isinstance(r, OnnxRuntimeRunner):
            r.spinning = False  # see the module docstring: interleaved timing needs it
        ok, why = r.availability()
        if not ok:
            result.unavailable[r.name] = why
            continue
        try:
            r.activate()
            for _ in range(warmup):
                r.infer(feed, check=False)
            active.append(r)
        except Exception as exc:  # one broken runtime must not stop the others' numbers
            result.errors[r.name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            r.deactivate()
    times: dict[str, list[float]] = {r.name: [] for r in active}
    start = time.perf_counter()
    with _RssSampler() as sampler:
        rounds = 0
        while rounds < repeats or time.perf_counter() - start < min_seconds:
            for r in active:
                if len(active) > 1:
                    r.infer(feed, check=False)  # settle: see the module docstring
                times[r.name].append(r.time_infer(feed))
            rounds += 1
            if rounds >= 20 * repeats:
                break
    for r in active:
        t = np.asarray(times[r.name])
        mem, kind = r.peak_memory_mb()
        if mem is None and base_rss is not None and sampler.peak is not None:
            mem, kind = max(0.0, sampler.peak - base_rss), "process RSS growth"
        result.timings.append(RuntimeTiming(
            r.name, float(np.median(t)), float(np.percentile(t, 90)),
            float(np.percentile(t, 99)), float(t.min()), len(t), r.activate_seconds, mem,
            kind))
        r.deactivate()
    return result


def settings() -> dict[str, str]:
    """Versions, threads and machine, recorded with every benchmark."""
    import onnxruntime
    import torch

    from attn_deploy.version import __version__
    return {"attn_deploy": __version__, "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or "unknown",
            "cpu_count": str(os.cpu_count()), "torch_threads": str(torch.get_num_threads()),
            "ort_threads": "default (one per physical core)",
            "ort_spinning": "off (session.intra_op/inter_op.allow_spinning = 0)",
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else "none"}


# Runtimes timed by default: onnx.reference is a correctness oracle, far too slow to time.
BENCH_RUNTIMES = ("torch-cpu", "torch-cuda", "ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")
_FP16_RUNTIMES = ("torch-cuda", "tensorrt")


class UnavailableRunner(Runner):
    """Stands in for a runtime that cannot run this benchmark, carrying the reason."""

    def __init__(self, name: str, why: str):
        super().__init__()
        self.name, self.why = name, why

    def availability(self):
        return False, self.why

    def input_metadata(self):
        return {}

    def _activate(self):
        raise AssertionError("unavailable runner activated")

    def _infer(self, feed):
        raise AssertionError("unavailable runner used")


def block_runners(key: str, model, path, runtimes: Sequence[str], precision: str = "fp32"):
    """Runners for block ``key``: eager PyTorch from ``model``, the rest from the ONNX file."""
    import copy

    import torch

    from attn_deploy.backends import TorchRunner, availability, onnx_runner
    from attn_deploy.modules.registry import spec

    s = spec(key, **getattr(model, "attn_deploy_config", {}).get("kwargs", {}))
    inputs = {n: (s.dtype(n), t) for n, t in s.inputs.items()}
    runners: list[Runner] = []
    for rt in runtimes:
        ok, why = availability(rt)
        if not ok:
            runners.append(UnavailableRunner(rt, why))
        elif precision == "fp16" and rt not in _FP16_RUNTIMES:
            runners.append(UnavailableRunner(rt, "fp16 is timed on GPU runtimes only "
                                                  f"({', '.join(_FP16_RUNTIMES)})"))
        elif rt.startswith("torch-"):
            m = copy.deepcopy(model)
            if precision == "fp16":
                m = m.half()
                inputs = {n: (torch.float16 if d.is_floating_point else d, t)
                          for n, (d, t) in inputs.items()}
            runners.append(TorchRunner(m, inputs, s.outputs, device=rt[6:]))
        elif rt == "tensorrt":
            runners.append(onnx_runner(rt, path, precision=precision))
        else:
            runners.append(onnx_runner(rt, path))
    return runners
