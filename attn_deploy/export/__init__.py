"""ONNX export of blocks and user models, and the export flavors for custom ops."""
from attn_deploy.export.onnx_export import DEFAULT_OPSET, export_block, export_onnx

__all__ = ["DEFAULT_OPSET", "export_block", "export_onnx"]
