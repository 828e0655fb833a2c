"""graphfuse: graph-based multimodal fusion on PyTorch Geometric."""
from graphfuse.graph import CrossEdges, GraphBuilder, VirtualNodes
from graphfuse.modalities import (
    AudioModality,
    FeatureModality,
    ImageModality,
    Modality,
    NodeSet,
    TextModality,
    Tokenizer,
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
