"""A block's int8 file, validated: quantize the exported fp32 file on seeded calibration inputs,
then compare it with PyTorch fp32 on held-out inputs at two shapes (the spec's dims and its
alternate dims, from the same file), with the int8 SQNR and cosine thresholds.

Calibration inputs use seeds ``CALIBRATION_SEED + i``; the held-out inputs are the validation's
(``seed + 101 + i``), so no calibration sample is ever scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from attn_deploy.errors import AttnDeployError
from attn_deploy.quantize.calibration_data import block_feeds
from attn_deploy.quantize.quantizer import QuantizeResult, quantize_model

CALIBRATION_SAMPLES = 8


def quantize_block_file(key: str, fp32_path: str | Path, int8_path: str | Path, *,
                        config: Mapping[str, Any] | None = None,
                        samples: int = CALIBRATION_SAMPLES, method: str = "minmax",
                        **dims: int) -> QuantizeResult:
    """Quantize block ``key``'s exported file, calibrated on ``samples`` seeded example inputs
    at ``dims`` (default: the spec's)."""
    return quantize_model(fp32_path, int8_path, block_feeds(key, config, samples, **dims),
                          method=method)


def validate_int8(v, model: torch.nn.Module, runtimes: Iterable[str],
                  dims: Sequence[Mapping[str, int]], seed: int = 0, progress=None):
    """Quantize ``v.onnx_path`` (block ``v.name``, exported from ``model``) beside it and run
    the int8 file on ``runtimes`` against PyTorch fp32 on held-out inputs at ``dims``; fills
    and returns the :class:`~attn_deploy.harness.validate.Validation` ``v``. A quantization
    that fails is recorded as an error of the pseudo-runtime ``quantize``."""
    from attn_deploy.harness.validate import (RunResult, graph_summary, reference_cases,
                                              run_runtimes)

    fp32 = Path(v.onnx_path)
    kwargs = getattr(model, "attn_deploy_config", {}).get("kwargs", {})
    try:
        result = quantize_block_file(v.name, fp32, fp32.with_suffix(".int8.onnx"),
                                     config=kwargs)
    except AttnDeployError as exc:
        v.results.append(RunResult("quantize", "-", "error", message=str(exc)))
        return v
    v.quantization = result
    v.onnx_path = str(result.path)
    v.node_count, v.custom_nodes = graph_summary(result.path)
    if result.placement_issues:
        v.results.append(RunResult("quantize", "-", "fail", message="Q/DQ placement: " + "; ".join(
            str(i) for i in result.placement_issues[:3])))
    if progress:
        progress(f"{v.name}: int8 {len(result.quantized_nodes)} node(s) quantized "
                 f"({result.seconds:.1f} s)")
    cases = reference_cases(v.name, model, dims, seed)
    run_runtimes(v, result.path, runtimes, cases, "int8", None, progress)
    return v


def int8_cell(v) -> dict:
    """The report's int8 entry for an int8 validation ``v``: status, worst SQNR and cosine
    over outputs and shapes on ONNX Runtime CPU, and what was quantized."""
    q = getattr(v, "quantization", None)
    failed = [r for r in v.results if r.runtime == "quantize" and r.status != "pass"]
    runs = [r for r in v.for_runtime("ort-cpu") if r.comparison is not None]
    entry: dict[str, Any] = {
        "status": v.runtime_status("ort-cpu"), "sqnr_db": None, "cosine": None,
        "quantized_nodes": len(q.quantized_nodes) if q else 0,
        "float_nodes": dict(q.float_nodes) if q else {},
        "message": "; ".join(r.message for r in failed)[:300]}
    if failed:
        entry["status"] = "error" if any(r.status == "error" for r in failed) else "fail"
    elif q is not None and not q.quantized_nodes:
        # e.g. GRU/LSTM: no layer TensorRT runs in int8, so the file is the fp32 one; its SQNR
        # would be fp32 rounding, not an int8 result
        entry["status"] = "fp32"
        entry["message"] = "no Conv/ConvTranspose/MatMul/Gemm to quantize"
    if runs:
        entry["sqnr_db"] = min(r.comparison.sqnr_db for r in runs)
        entry["cosine"] = min(r.comparison.cosine for r in runs)
    errors = [r.message for r in v.for_runtime("ort-cpu") if r.status == "error"]
    if errors and not entry["message"]:
        entry["message"] = errors[0][:300]
    return entry
