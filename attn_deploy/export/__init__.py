"""ONNX export of blocks and user models, and the export flavors for custom ops.

``flavors`` needs only onnx (the TensorRT engine builder uses it on the runtime side);
``onnx_export`` needs torch and is loaded when its names are first used.
"""
__all__ = ["DEFAULT_OPSET", "export_block", "export_onnx"]


def __getattr__(name):
    if name in __all__:
        from attn_deploy.export import onnx_export
        return getattr(onnx_export, name)
    raise AttributeError(f"module 'attn_deploy.export' has no attribute {name!r}")
