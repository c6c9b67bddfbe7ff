"""Static TensorRT check of an ONNX model, with no TensorRT installed: per node, would TensorRT's
ONNX parser (10.3 for JetPack 6, and the newest) import it, natively or through the plugins?

    from attn_deploy.trt_check import check_model
    result = check_model("cbam.onnx")
    if not result:
        print(result.summary())

- ``model_check``: the driver and its verdicts (``check_model``, ``CheckResult``).
- ``support_table``: TensorRT's published operator support, and its generator.
- ``node_rules``: the per-node rules (the table's checks, the plugin nodes).
- ``graph_facts``: what the rules may ask about a graph's values (types, shapes, constants).
"""
from attn_deploy.trt_check.model_check import CheckResult, check_model

__all__ = ["CheckResult", "check_model"]
