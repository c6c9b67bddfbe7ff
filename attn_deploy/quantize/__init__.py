"""Post-training int8 quantization to TensorRT's explicit Q/DQ form, with its accuracy proof.

    from attn_deploy.quantize import quantize_model, measure_accuracy
    result = quantize_model("net.onnx", "net.int8.onnx", "calib/")  # folder of .npz samples
    print(result.summary())

Modules: ``calibration_data`` (where calibration feeds come from, checked), ``quantizer``
(ONNX Runtime's static quantizer with TensorRT's conventions), ``placement_rules`` (where Q/DQ
may stand for TensorRT; also run by ``trt-check``), ``accuracy`` (SQNR and cosine similarity
per output with thresholds per precision), ``block_quantization`` (a block's int8 file
validated on held-out inputs) and ``benchmark`` (ONNX Runtime int8 against fp32 on the CPU).
"""
from attn_deploy.quantize.accuracy import (THRESHOLDS, Accuracy, cosine_similarity,
                                           measure_accuracy, sqnr_db)
from attn_deploy.quantize.calibration_data import block_feeds, callable_feeds, folder_feeds
from attn_deploy.quantize.placement_rules import check_qdq_placement, float_only_nodes
from attn_deploy.quantize.quantizer import METHODS, QuantizeResult, quantize_model

__all__ = ["METHODS", "THRESHOLDS", "Accuracy", "QuantizeResult", "block_feeds",
           "callable_feeds", "check_qdq_placement", "cosine_similarity", "float_only_nodes",
           "folder_feeds", "measure_accuracy", "quantize_model", "sqnr_db"]
