"""The two ops TensorRT lacks: CARAFE reassembly and criss-cross attention.

Each has a pure-PyTorch reference (the test oracle's twin and the fallback), a ``torch.library``
custom op (``torch.ops.attn_deploy.carafe`` / ``.criss_cross_attention``, with fake
implementations and backward), compiled CPU/CUDA kernels when they are built, and an ONNX
translation to one custom node with a standard-op local function (``onnx_functions``).
"""
from attn_deploy.ops._dispatch import native_available
from attn_deploy.ops.carafe import carafe, carafe_reference
from attn_deploy.ops.criss_cross_attention import (criss_cross_attention,
                                                   criss_cross_attention_reference)

__all__ = ["carafe", "carafe_reference", "criss_cross_attention",
           "criss_cross_attention_reference", "native_available"]
