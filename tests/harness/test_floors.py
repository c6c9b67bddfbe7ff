"""Floors: the cost formulas against counts made by hand and by torch, the floor arithmetic."""
import pytest
import torch
from torch import nn

from attn_deploy.harness.floors import (MachineRates, carafe_cost, criss_cross_cost,
                                        measure_rates, module_cost)
from attn_deploy.ops import carafe, criss_cross_attention


def test_floor_is_the_slower_of_moving_and_computing():
    rates = MachineRates(copy_bytes_per_s=10e9, gemm_flops_per_s=100e9, threads=2)
    assert rates.floor_s(1e9, 1e9) == pytest.approx(0.1)     # bandwidth-bound
    assert rates.floor_s(1e6, 50e9) == pytest.approx(0.5)    # compute-bound
    assert "10.0 GB/s" in rates.describe() and "100 GFLOP/s" in rates.describe()


def test_cost_of_the_issue_15_cases():
    # CARAFE: features 256x64x64, masks 25x128x128 read, output 256x128x128 written (fp32);
    # 25 multiply-adds per output element
    moved, flops = carafe_cost(1, 256, 64, 64, 5, 1, 2)
    assert moved == 4 * (256 * 64 * 64 + 25 * 128 * 128 + 256 * 128 * 128)
    assert flops == 2 * 25 * 256 * 128 * 128
    # criss-cross: 127 positions per pixel, q.k over 64 channels and a.v over 512
    moved, flops = criss_cross_cost(1, 64, 512, 64, 64)
    assert moved == 4 * (2 * 64 + 2 * 512) * 64 * 64
    assert flops == 2 * 64 * 64 * 127 * (64 + 512)


def test_module_cost_counts_matmuls_parameters_and_custom_ops():
    lin = nn.Linear(8, 4)
    x = torch.randn(3, 8)
    moved, flops = module_cost(lin, (x,))
    assert flops == 2 * 3 * 8 * 4
    assert moved == 4 * (3 * 8 + 8 * 4 + 4 + 3 * 4)

    class Ops(nn.Module):
        def forward(self, f, m, q, v):
            return carafe(f, m, 3, 1, 2), criss_cross_attention(q, q, v)

    f, m = torch.randn(1, 4, 5, 6), torch.rand(1, 9, 10, 12)
    q, v = torch.randn(1, 2, 5, 6), torch.randn(1, 3, 5, 6)
    _, flops = module_cost(Ops(), (f, m, q, v))
    assert flops == carafe_cost(1, 4, 5, 6, 3, 1, 2)[1] + criss_cross_cost(1, 2, 3, 5, 6)[1]


def test_measured_rates_are_positive_and_recorded_with_threads():
    rates = measure_rates(repeats=1)
    assert rates.copy_bytes_per_s > 1e8 and rates.gemm_flops_per_s > 1e8
    assert rates.threads == torch.get_num_threads() and rates.device == "cpu"
