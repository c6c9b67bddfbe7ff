"""Reference networks for the export recipes, written with mmcv's module and parameter names so
that mmseg / mmdet (mmengine-layout) checkpoints load onto them without mmcv installed:

- :mod:`.ccnet`: CCNet (ResNetV1c + mmseg's CCHead, recurrence 2), ``export/ccnet_resnet.toml``;
- :mod:`.fpn_carafe`: ResNet + mmdet's FPN_CARAFE neck, ``export/fpn_carafe_resnet.toml``.

Their attention layers are attn_deploy's ops (criss-cross attention, CARAFE), so they export
as they are; ``deployable()`` leaves them in place.
"""
from attn_deploy.deploy.reference_networks.ccnet import CCNet, ccnet_resnet
from attn_deploy.deploy.reference_networks.fpn_carafe import CARAFEPyramid, fpn_carafe_resnet

__all__ = ["CARAFEPyramid", "CCNet", "ccnet_resnet", "fpn_carafe_resnet"]
