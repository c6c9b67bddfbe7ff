"""attn_deploy: attention blocks from PyTorch to ONNX, ONNX Runtime and TensorRT.

    import attn_deploy as ad
    ad.list_modules()                       # block keys
    model = ad.create("cbam", channels=64)  # an nn.Module in eval mode
    ad.export_block("cbam", "cbam.onnx")    # dynamic N/H/W, validated, written atomically

The export side (blocks, export, layer swaps) needs PyTorch (``pip install
"attn_deploy[export]"``); the runtime side (runners, validation of ONNX files, TensorRT engines,
trt-check, Triton repositories) does not, and importing ``attn_deploy`` never imports torch: the
names below load their module when first used.
"""
from attn_deploy.errors import AttnDeployError, RuntimeUnavailableError
from attn_deploy.version import __version__

__all__ = [
    "AttnDeployError", "BlockSpec", "RuntimeUnavailableError", "__version__", "create",
    "deployable", "example_inputs", "export_block", "export_onnx", "list_modules", "spec",
]

_LAZY = {
    "BlockSpec": "attn_deploy.modules.registry", "create": "attn_deploy.modules.registry",
    "example_inputs": "attn_deploy.modules.registry",
    "list_modules": "attn_deploy.modules.registry", "spec": "attn_deploy.modules.registry",
    "export_onnx": "attn_deploy.export.onnx_export",
    "export_block": "attn_deploy.export.onnx_export",
    "deployable": "attn_deploy.deploy.layer_swaps",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attn_deploy' has no attribute {name!r}")
