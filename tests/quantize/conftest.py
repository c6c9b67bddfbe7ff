"""Small exported blocks shared by the quantize tests (exports are the slow part)."""
import pytest
import torch

import attn_deploy as ad

# Small configs: a custom node (cca), a softmax attention with a mask input (mha), a plain
# conv gate (se).
CONFIGS = {"cca": {"channels": 16}, "mha": {"dim": 16, "num_heads": 2}, "se": {"channels": 16}}


@pytest.fixture(scope="package")
def exported(tmp_path_factory):
    """key -> (model, fp32 path) for the blocks in CONFIGS."""
    out = tmp_path_factory.mktemp("quantize_blocks")
    files = {}
    for key, config in CONFIGS.items():
        torch.manual_seed(0)
        model = ad.create(key, **config)
        files[key] = (model, ad.export_block(key, out / f"{key}.onnx", model=model))
    return files
