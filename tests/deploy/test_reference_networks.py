"""The reference networks (CCNet; ResNet + FPN_CARAFE): mmseg/mmdet key layout, the same numbers
as mmcv-semantics layers (einsum criss-cross, unfold CARAFE), and checkpoints in mmengine's layout
exported through the command line, validated at odd sizes and trt-checked for TensorRT 10.3.
Small widths here; the realistic ones are benchmarked (``attn-deploy bench --recipe``)."""
import copy
import inspect
import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from attn_deploy.cli import main
from attn_deploy.deploy.recipe import load_recipe
from attn_deploy.deploy.reference_networks import ccnet_resnet, fpn_carafe, fpn_carafe_resnet
from attn_deploy.errors import AttnDeployError

RECIPES = Path(__file__).resolve().parents[2] / "export"
def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_key_layout_is_mmseg_and_mmdet(small_reference_networks):
    small = small_reference_networks
    cc = ccnet_resnet(**small.ccnet)
    keys = set(cc.state_dict())
    assert {"backbone.stem.0.weight", "backbone.stem.7.running_var",
            "backbone.layer2.0.downsample.1.weight", "decode_head.convs.0.conv.weight",
            "decode_head.cca.query_conv.weight", "decode_head.cca.gamma.scale",
            "decode_head.conv_cat.bn.running_mean", "decode_head.conv_seg.bias",
            "auxiliary_head.convs.0.bn.weight", "auxiliary_head.conv_seg.weight"} <= keys
    assert not any(k.endswith("conv.bias") for k in keys if "convs" in k)  # ConvModule + BN
    # ResNetV1c at output stride 8: dilations (1, 1, 2, 4), contracted in a stage's first block
    assert cc.backbone.layer3[0].conv1.dilation == (1, 1)
    assert cc.backbone.layer4[0].conv1.dilation == (2, 2)
    assert ccnet_resnet(stage_blocks=(1, 1, 1, 2)).backbone.layer4[1].conv1.dilation == (4, 4)
    fpn = fpn_carafe_resnet(**small.fpn)
    keys = set(fpn.state_dict())
    assert {"backbone.conv1.weight", "backbone.bn1.running_mean",
            "backbone.layer4.0.downsample.0.weight", "neck.lateral_convs.4.conv.weight",
            "neck.upsample_modules.3.content_encoder.bias",
            "neck.upsample_modules.0.channel_compressor.weight",
            "neck.fpn_convs.4.conv.bias"} <= keys
    assert fpn.neck.lateral_convs[4].conv.stride == (2, 2)  # the extra level P6


def test_attention_layers_match_mmcv_semantics(lookalikes, small_reference_networks):
    small = small_reference_networks
    """The networks' criss-cross and CARAFE steps (attn_deploy's ops) against mmcv's semantics
    written independently (einsum + diagonal mask; unfold), same weights, odd sizes."""
    cc = small.trained(ccnet_resnet(**small.ccnet), 1)
    ref = copy.deepcopy(cc)
    ref.decode_head.cca = lookalikes.CrissCrossAttention(16)
    ref.decode_head.cca.load_state_dict(cc.decode_head.cca.state_dict())
    fpn = small.trained(fpn_carafe_resnet(**small.fpn), 2)
    ref_fpn = copy.deepcopy(fpn)
    for i, up in enumerate(fpn.neck.upsample_modules):
        mmcv = lookalikes.CARAFEPack(16, 2, up_kernel=5, compressed_channels=8)
        mmcv.load_state_dict(up.state_dict())
        ref_fpn.neck.upsample_modules[i] = mmcv
    with torch.no_grad():
        for shape in [(1, 3, 97, 61), (2, 3, 64, 48)]:
            x = torch.randn(shape)
            assert _rel(cc(x), ref(x)) <= 1e-6
        # 100 x 70 is not a multiple of 64: eager runs the cropping branch
        for shape in [(1, 3, 128, 320), (1, 3, 100, 70)]:
            x = torch.randn(shape)
            outs, refs = fpn(x), ref_fpn(x)
            assert [o.shape[-2:] for o in outs] == [r.shape[-2:] for r in refs]
            assert all(_rel(o, r) <= 1e-6 for o, r in zip(outs, refs))


def _check_export(text, out, custom, trained, shape, capsys):
    """The CLI's verdict (custom nodes, PASS on both CPU runtimes at ``shape``), then, on its
    own, ONNX Runtime against the model that wrote the checkpoint, and trt-check for 10.3."""
    assert f"custom: {custom}" in text and text.rstrip().endswith("PASS")
    label = "image:" + "x".join(map(str, shape))
    assert sum(1 for line in text.splitlines() if label in line and " pass " in line) == 2
    x = torch.randn(shape)
    with torch.no_grad():
        refs = trained(x)
    refs = [refs] if isinstance(refs, torch.Tensor) else list(refs)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outs = session.run(None, {"image": x.numpy()})
    assert len(outs) == len(refs) and all(_rel(o, r) <= 1e-5 for o, r in zip(outs, refs))
    assert main(["trt-check", "--tensorrt", "10.3", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out


def test_ccnet_from_an_mmengine_checkpoint_through_the_cli(tmp_path, capsys,
                                                           mmengine_checkpoint,
                                                           small_reference_networks):
    small = small_reference_networks
    trained = small.trained(ccnet_resnet(**small.ccnet), 3)
    ckpt = mmengine_checkpoint(tmp_path / "iter_3000.pth", trained.state_dict())
    out = tmp_path / "ccnet.onnx"
    code = main(["export", "--model", "attn_deploy.deploy.reference_networks:ccnet_resnet",
                 "--kwargs", json.dumps(small.ccnet), "--checkpoint", str(ckpt),
                 "--input", "image:2x3x64x48", "--dynamic", "image:0=N,2=H,3=W",
                 "--shapes", "image:1x3x97x61", "--shapes", "image:2x3x64x48",
                 "--output-names", "logits", "-o", str(out),
                 "--runtimes", "ort-cpu", "onnx-reference"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "mmengine layout, weights from entry 'state_dict'" in text
    assert "mmengine.logging.history_buffer.HistoryBuffer" in text and "never run" in text
    assert "missing 0, unexpected 0" in text and "deployable: nothing to replace" not in text
    _check_export(text, out, "attn_deploy::CrissCrossAttention", trained, (1, 3, 97, 61), capsys)


def test_fpn_recipe_from_an_mmengine_detector_checkpoint(tmp_path, capsys, mmengine_checkpoint,
                                                        small_reference_networks):
    small = small_reference_networks
    trained = small.trained(fpn_carafe_resnet(**small.fpn), 4)
    state = {**trained.state_dict(), "rpn_head.rpn_conv.weight": torch.randn(16, 16, 3, 3),
             "roi_head.bbox_head.fc_cls.bias": torch.randn(81)}  # a detector's heads
    ckpt = mmengine_checkpoint(tmp_path / "epoch_12.pth", state)
    text = (RECIPES / "fpn_carafe_resnet.toml").read_text()
    kwargs = "kwargs = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in small.fpn.items())
    lines = [f'{kwargs} }}\ncheckpoint = "{ckpt}"\nallow_unexpected_keys = true'
             if line.startswith("kwargs =") else line for line in text.splitlines()]
    recipe = tmp_path / "fpn.toml"
    recipe.write_text("\n".join(lines))
    out = tmp_path / "fpn.onnx"
    code = main(["export", "--recipe", str(recipe), "-o", str(out),
                 "--runtimes", "ort-cpu", "onnx-reference"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "unexpected keys (2): roi_head.bbox_head.fc_cls.bias, rpn_head.rpn_conv.weight" \
        in text and "missing 0" in text
    # a multiple of 64 but an odd aspect (320 x 128)
    _check_export(text, out, "attn_deploy::CARAFE", trained, (1, 3, 320, 128), capsys)
    # sizes that are not multiples of 64 are refused by the recipe, naming the multiple
    recipe.write_text(recipe.read_text().replace("H = 320", "H = 300"))
    with pytest.raises(AttnDeployError, match="dim H must be >= 1 and a multiple of 64"):
        load_recipe(recipe)


def test_fpn_without_multiple_is_refused_with_the_multiple_that_exports_it(
        tmp_path, capsys, small_reference_networks):
    small = small_reference_networks
    """Issue 16: ``export --model`` of the FPN_CARAFE network without ``--multiple`` froze the
    cropping branch at the example size (a divisibility guard): exit 2, naming the branch's
    line and suggesting ``--multiple H=64,W=64``, with nothing written; the suggested flag
    then exports a file that passes at its alternate shape."""
    out = tmp_path / "fpn.onnx"
    args = ["export", "--model", "attn_deploy.deploy.reference_networks:fpn_carafe_resnet",
            "--kwargs", json.dumps(small.fpn), "--input", "image:2x3x128x192",
            "--dynamic", "image:0=N,2=H,3=W", "-o", str(out), "--runtimes", "ort-cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    src, start = inspect.getsourcelines(fpn_carafe.add_cropped)
    branch = start + next(i for i, line in enumerate(src) if line.strip().startswith("if "))
    assert "frozen" in err and f"fpn_carafe.py:{branch} in add_cropped" in err
    suggested = re.search(r"declare that, e\.g\. --multiple (\S+) ", err)
    assert suggested is not None and suggested.group(1) == "H=64,W=64", err
    assert not out.exists() and (tmp_path / "fpn.failed.onnx").is_file()
    assert main(args + ["--multiple", suggested.group(1)]) == 0
    text = capsys.readouterr().out
    assert "custom: attn_deploy::CARAFE" in text and text.rstrip().endswith("PASS")
    assert out.is_file()
