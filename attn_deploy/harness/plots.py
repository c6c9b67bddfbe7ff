"""PNG plots of benchmark results: latency per runtime per block, and speed-up over eager."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

from attn_deploy.atomic_write import atomic_write_bytes
from attn_deploy.harness.bench import BenchResult


def _figure_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def plot_latency(results: Sequence[BenchResult], path: str | Path) -> Path:
    """Grouped horizontal bars: median latency (log scale) per runtime, one group per block."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = sorted({t.runtime for r in results for t in r.timings})
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(results) * max(1, len(runtimes)) + 1.5))
    height = 0.8 / max(1, len(runtimes))
    for j, rt in enumerate(runtimes):
        ys = [i + j * height for i in range(len(results))]
        xs = [r.median(rt) or 0.0 for r in results]
        ax.barh(ys, xs, height=height, label=rt)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(results))])
    ax.set_yticklabels([r.name for r in results])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median latency (ms, log scale)")
    ax.legend(loc="lower right")
    ax.set_title("Latency per block and runtime")
    data = _figure_bytes(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)


def plot_speedup(results: Sequence[BenchResult], path: str | Path,
                 baseline: str = "torch-cpu") -> Path:
    """Speed-up of each runtime over ``baseline`` per block (above 1: faster than eager)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runtimes = sorted({t.runtime for r in results for t in r.timings} - {baseline})
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(results) * max(1, len(runtimes)) + 1.5))
    height = 0.8 / max(1, len(runtimes))
    for j, rt in enumerate(runtimes):
        ys = [i + j * height for i in range(len(results))]
        xs = [(1.0 / r.ratio(rt, baseline)) if r.ratio(rt, baseline) else 0.0 for r in results]
        ax.barh(ys, xs, height=height, label=rt)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(results))])
    ax.set_yticklabels([r.name for r in results])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"speed-up over {baseline} (log scale; > 1 is faster)")
    ax.legend(loc="lower right")
    ax.set_title("Speed-up over PyTorch eager")
    data = _figure_bytes(fig)
    plt.close(fig)
    return atomic_write_bytes(path, data)
