"""Backbones: pretrained-style networks turning raw-ish inputs into feature maps or hidden states.

* :class:`EfficientNetLite0` / :func:`efficientnet_lite0`: the EfficientNet-Lite0 image classifier, whose
  :meth:`~EfficientNetLite0.forward_features` gives a ``[B, 1280, H/32, W/32]`` feature map (registered as
  ``"efficientnet-lite0"``);
* :data:`BACKBONES` / :func:`register_backbone`: backbone factories by name.
"""
from graphfuse.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    EfficientNetLite0,
    efficientnet_lite0,
)
from graphfuse.backbones.registry import BACKBONES, register_backbone

__all__ = ["BACKBONES", "EFFICIENTNET_LITE_MEAN", "EFFICIENTNET_LITE_STD", "EfficientNetLite0", "efficientnet_lite0",
           "register_backbone"]
