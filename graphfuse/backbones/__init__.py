"""Pretrained encoders as node sources: wrappers turning a batch of inputs into per-node hidden states,
and a registry of backbones by name; EfficientNet-Lite0 (:class:`EfficientNetLite0`, registered as
``"efficientnet-lite0"``), whose ImageNet weights the ``bench`` extra installs."""
from graphfuse.backbones.base import Backbone, check_hidden_states
from graphfuse.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE_MEAN,
    EFFICIENTNET_LITE_STD,
    EfficientNetLite0,
    efficientnet_lite0,
)
from graphfuse.backbones.feature_map import FeatureMapEncoder
from graphfuse.backbones.registry import (
    BACKBONES,
    backbone_from_config,
    backbone_to_config,
    create_backbone,
    list_backbones,
    register_backbone,
)
from graphfuse.backbones.speech import HFSpeechEncoder
from graphfuse.backbones.text import HFTextEncoder
from graphfuse.backbones.vision import HFVisionEncoder

__all__ = [
    "BACKBONES",
    "Backbone",
    "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD",
    "EfficientNetLite0",
    "FeatureMapEncoder",
    "HFSpeechEncoder",
    "HFTextEncoder",
    "HFVisionEncoder",
    "backbone_from_config",
    "backbone_to_config",
    "check_hidden_states",
    "create_backbone",
    "efficientnet_lite0",
    "list_backbones",
    "register_backbone",
]
