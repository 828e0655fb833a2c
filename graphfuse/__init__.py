"""graphfuse: graph-based multimodal fusion on PyTorch Geometric."""
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FeatureModality,
    GraphBuilder,
    ImageModality,
    Modality,
    NodeSet,
    TextModality,
    Tokenizer,
    VirtualNodes,
    register_modality,
)

__version__ = "0.1.0"

__all__ = [
    "AudioModality",
    "CrossEdges",
    "FeatureModality",
    "GraphBuilder",
    "ImageModality",
    "Modality",
    "NodeSet",
    "TextModality",
    "Tokenizer",
    "VirtualNodes",
    "register_modality",
    "__version__",
]
