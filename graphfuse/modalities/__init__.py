"""Deprecated: modalities moved to :mod:`graphfuse.data` (``graphfuse.data.modalities``); these aliases
last one release."""
from graphfuse.deprecation import moved

__all__ = ["AudioModality", "FeatureModality", "ImageModality", "Modality", "NodeSet", "TextModality", "Tokenizer",
           "create_modality", "list_modalities", "mel_filter_bank", "register_modality"]
__getattr__ = moved(__name__, "graphfuse.data", __all__)
