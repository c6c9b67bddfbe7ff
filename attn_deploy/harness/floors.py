"""The machine's floors: how fast this process moves bytes and does fp32 multiply-adds, and the
least time an op or a block can take at those rates.

    rates = measure_rates()                       # copy GB/s (read + write), GEMM GFLOP/s
    bytes_moved, flops = carafe_cost(1, 256, 64, 64, 5, 1, 2)
    floor_s = rates.floor_s(bytes_moved, flops)   # max(bytes / copy rate, FLOPs / GEMM rate)

Rates are measured in the calling process, with its thread count, so that a benchmark compares
each op with the floor under the same conditions (and the same machine load): a large
``copy_`` (256 MiB, counted as read + write) and a 2048^3 fp32 matmul. Bytes moved are what an
op must read and write at least once (inputs, parameters, outputs); FLOPs count a multiply-add
as 2.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

COPY_MIB = 256
GEMM_SIZE = 2048


@dataclass(frozen=True)
class MachineRates:
    copy_bytes_per_s: float  # large copy, read + write bytes per second
    gemm_flops_per_s: float  # fp32 GEMM (GEMM_SIZE^3), FLOPs per second
    threads: int             # torch CPU threads they were measured with
    device: str = "cpu"

    def floor_s(self, bytes_moved: float, flops: float) -> float:
        """The least seconds an op moving ``bytes_moved`` and doing ``flops`` can take."""
        return max(bytes_moved / self.copy_bytes_per_s, flops / self.gemm_flops_per_s)

    def describe(self) -> str:
        return (f"copy {self.copy_bytes_per_s / 1e9:.1f} GB/s (read+write), fp32 GEMM "
                f"{self.gemm_flops_per_s / 1e9:.0f} GFLOP/s ({self.device}, "
                f"{self.threads} threads)")


def copy_probe(device: str = "cpu") -> tuple[Callable[[], object], float]:
    """A large copy to time, and the bytes it moves (read + write)."""
    src = torch.ones(COPY_MIB * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    return (lambda: dst.copy_(src)), 2.0 * src.numel() * src.element_size()


def gemm_probe(device: str = "cpu") -> tuple[Callable[[], object], float]:
    """A fp32 GEMM_SIZE^3 matmul to time, and its FLOPs."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(GEMM_SIZE, GEMM_SIZE, generator=gen).to(device) for _ in range(2))
    out = torch.empty(GEMM_SIZE, GEMM_SIZE, device=device)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * GEMM_SIZE ** 3


def _median_seconds(fn: Callable[[], object], device: str, repeats: int) -> float:
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_rates(device: str = "cpu", repeats: int = 5) -> MachineRates:
    """Copy and GEMM rates of this process now (medians of ``repeats`` runs each)."""
    copy, copy_bytes = copy_probe(device)
    copy_s = _median_seconds(copy, device, repeats)
    del copy
    gemm, gemm_flops = gemm_probe(device)
    gemm_s = _median_seconds(gemm, device, repeats)
    return MachineRates(copy_bytes / copy_s, gemm_flops / gemm_s, torch.get_num_threads(),
                        device)


def carafe_cost(n: int, c: int, h: int, w: int, kernel_size: int, group_size: int,
                scale_factor: int, itemsize: int = 4) -> tuple[float, float]:
    """(bytes, FLOPs) of CARAFE: features [n, c, h, w] and masks [n, G*k*k, s*h, s*w] read,
    output [n, c, s*h, s*w] written; k*k multiply-adds per output element."""
    k2, s2 = kernel_size ** 2, scale_factor ** 2
    elements = n * c * h * w + n * group_size * k2 * s2 * h * w + n * c * s2 * h * w
    return float(elements * itemsize), 2.0 * k2 * n * c * s2 * h * w


def criss_cross_cost(n: int, cq: int, c: int, h: int, w: int,
                     itemsize: int = 4) -> tuple[float, float]:
    """(bytes, FLOPs) of criss-cross attention: query, key [n, cq, h, w] and value [n, c, h, w]
    read, output [n, c, h, w] written; energies and aggregation over the H + W - 1 positions
    of each pixel (softmax and exponentials not counted)."""
    elements = 2 * n * cq * h * w + 2 * n * c * h * w
    positions = h + w - 1
    return float(elements * itemsize), 2.0 * n * h * w * positions * (cq + c)


def _custom_op_flops() -> dict:
    """FLOP formulas of attn_deploy's custom ops for torch's FlopCounterMode (which knows only
    aten ops), keyed by op packet as the counter looks them up."""
    import attn_deploy.ops  # noqa: F401  (registers torch.ops.attn_deploy.*)

    def carafe_flops(features_shape, masks_shape, kernel_size, group_size, scale_factor,
                     out_shape=None, **kw):
        n, c, h, w = features_shape
        return int(carafe_cost(n, c, h, w, kernel_size, group_size, scale_factor)[1])

    def criss_cross_flops(q_shape, k_shape, v_shape, out_shape=None, **kw):
        n, cq, h, w = q_shape
        return int(criss_cross_cost(n, cq, v_shape[1], h, w)[1])

    return {torch.ops.attn_deploy.carafe: carafe_flops,
            torch.ops.attn_deploy.criss_cross_attention: criss_cross_flops}


def module_cost(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[float, float]:
    """(bytes, FLOPs) of one forward of ``model``: inputs, parameters and buffers read, outputs
    written once; FLOPs from torch's FlopCounterMode (matmuls, convolutions, attention, and
    attn_deploy's custom ops; elementwise work is not counted, so this is a lower bound)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_custom_op_flops())
    with torch.no_grad(), counter:
        out = model(*inputs)
    outs = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    tensors = [*inputs, *model.parameters(), *model.buffers(), *outs]
    moved = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return float(moved), float(counter.get_total_flops())
