"""Latency measurement: warm-up, then timed repeats; median, p90, p99 and min.

Every runner gets the same inputs. On the CPU, wall-clock time around each call; runners with
a device clock (TensorRT, torch on CUDA) synchronise inside their timing. Cold start (session
creation, engine build) is the runner's ``activate_seconds``, reported apart.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from attn_deploy.backends.base import Runner


@dataclass
class Latency:
    runtime: str
    median_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    repeats: int
    cold_start_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def measure(runner: Runner, feed: Mapping[str, np.ndarray], *, warmup: int = 5,
            repeats: int = 50, min_seconds: float = 0.0) -> Latency:
    """Time ``runner.infer(feed)``; runs at least ``repeats`` times and ``min_seconds``."""
    for _ in range(warmup):
        runner.infer(feed, check=False)
    sync = getattr(runner, "synchronize", lambda: None)
    times = []
    start_all = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start_all < min_seconds:
        t0 = time.perf_counter()
        runner.infer(feed, check=False)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return Latency(runner.name, float(np.median(t)), float(np.percentile(t, 90)),
                   float(np.percentile(t, 99)), float(t.min()), len(t), runner.activate_seconds)
