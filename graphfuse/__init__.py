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

# Last: the baselines build on the whole core, and importing them registers their models, so that
# create_model knows every name whenever graphfuse is imported.
import graphfuse.baselines  # noqa: E402, F401  isort: skip

__version__ = "0.1.0"

__all__ = [
    "AudioModality",
    "CrossEdges",
    "FeatureModality",
    "GraphBuilder",
    "ImageEncoderModality",
    "ImageModality",
    "Modality",
    "NodeSet",
    "SpeechEncoderModality",
    "TextEncoderModality",
    "TextModality",
    "Tokenizer",
    "VirtualNodes",
    "register_modality",
    "__version__",
]
