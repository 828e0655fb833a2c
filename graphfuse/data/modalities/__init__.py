"""Modality featurizers: one raw input -> a node set with its intra-modal edges."""
from graphfuse.data.modalities.audio import AudioModality, mel_filter_bank
from graphfuse.data.modalities.base import Modality, create_modality, list_modalities, register_modality
from graphfuse.data.modalities.features import FeatureModality
from graphfuse.data.modalities.image import ImageModality
from graphfuse.data.modalities.image_encoder import ImageEncoderModality
from graphfuse.data.modalities.pretrained import PretrainedModality
from graphfuse.data.modalities.speech_encoder import SpeechEncoderModality
from graphfuse.data.modalities.text import TextModality
from graphfuse.data.modalities.text_encoder import TextEncoderModality
from graphfuse.data.modalities.tokenizer import Tokenizer
from graphfuse.data.nodes import NodeSet

__all__ = [
    "AudioModality",
    "FeatureModality",
    "ImageEncoderModality",
    "ImageModality",
    "Modality",
    "NodeSet",
    "PretrainedModality",
    "SpeechEncoderModality",
    "TextEncoderModality",
    "TextModality",
    "Tokenizer",
    "create_modality",
    "list_modalities",
    "mel_filter_bank",
    "register_modality",
]
