"""attn_deploy: attention blocks from PyTorch to ONNX, ONNX Runtime and TensorRT.

    import attn_deploy as ad
    ad.list_modules()                       # block keys
    model = ad.create("cbam", channels=64)  # an nn.Module in eval mode
    ad.export_block("cbam", "cbam.onnx")    # dynamic N/H/W, validated, written atomically
"""
from attn_deploy.errors import AttnDeployError, RuntimeUnavailableError
from attn_deploy.modules.registry import BlockSpec, create, example_inputs, list_modules, spec
from attn_deploy.version import __version__

__all__ = [
    "AttnDeployError", "BlockSpec", "RuntimeUnavailableError", "__version__", "create",
    "deployable", "example_inputs", "export_block", "export_onnx", "list_modules", "spec",
]


def __getattr__(name):
    # Export pulls in torch.onnx and onnx; load it only when asked for.
    if name in ("export_onnx", "export_block"):
        from attn_deploy.export import onnx_export
        return getattr(onnx_export, name)
    if name == "deployable":
        from attn_deploy.deploy.layer_swaps import deployable
        return deployable
    raise AttributeError(f"module 'attn_deploy' has no attribute {name!r}")
