"""graphfuse: graph-based multimodal fusion on PyTorch Geometric."""
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FeatureModality,
    GraphBuilder,
    ImageEncoderModality,
    ImageModality,
    Modality,
    NodeSet,
    SpeechEncoderModality,
    TextEncoderModality,
    TextModality,
    Tokenizer,
    VirtualNodes,
    register_modality,
)
from graphfuse.pipeline import GalleryIndex, Pipeline
from graphfuse.version import __version__

# Last: the baselines build on the whole core, and importing them registers their models, so that
# create_model knows every name whenever graphfuse is imported.
import graphfuse.baselines  # noqa: E402, F401  isort: skip

__all__ = [
    "AudioModality",
    "CrossEdges",
    "FeatureModality",
    "GalleryIndex",
    "GraphBuilder",
    "ImageEncoderModality",
    "ImageModality",
    "Modality",
    "NodeSet",
    "Pipeline",
    "SpeechEncoderModality",
    "TextEncoderModality",
    "TextModality",
    "Tokenizer",
    "VirtualNodes",
    "register_modality",
    "__version__",
]
