"""Modality featurizers: one raw input -> a node set with its intra-modal edges."""
from graphfuse.modalities.audio import AudioModality, mel_filter_bank
from graphfuse.modalities.base import Modality, NodeSet, create_modality, list_modalities, register_modality
from graphfuse.modalities.features import FeatureModality
from graphfuse.modalities.image import ImageModality
from graphfuse.modalities.text import TextModality
from graphfuse.modalities.tokenizer import Tokenizer

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
