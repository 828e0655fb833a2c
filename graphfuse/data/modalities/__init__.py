"""Modality featurizers: one raw input -> a node set with its intra-modal edges."""
from graphfuse.data.modalities.audio import AudioModality, mel_filter_bank
from graphfuse.data.modalities.base import Modality, create_modality, list_modalities, register_modality
from graphfuse.data.modalities.features import FeatureModality
from graphfuse.data.modalities.image import ImageModality
from graphfuse.data.modalities.text import TextModality
from graphfuse.data.modalities.tokenizer import Tokenizer

__all__ = [
    "AudioModality",
    "FeatureModality",
    "ImageModality",
    "Modality",
    "NodeSet",
    "TextModality",
    "Tokenizer",
    "create_modality",
    "list_modalities",
    "mel_filter_bank",
    "register_modality",
]
