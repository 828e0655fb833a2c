"""The data layer: node sets, edge patterns, modalities, cross-modal strategies, the graph builder,
batching and conversion, and samples from tables and raw files. Nothing here imports the layers
above (``nn``, ``models``, ``train``)."""
from graphfuse.data.builder import GraphBuilder
from graphfuse.data.columns import ColumnSamples, from_columns
from graphfuse.data.convert import from_dgl, from_networkx, to_dgl, to_networkx
from graphfuse.data.cross import (
    STRATEGIES,
    CallableStrategy,
    CrossEdges,
    CrossModalStrategy,
    FullBipartite,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    VirtualNodes,
    register_strategy,
    resolve_strategy,
)
from graphfuse.data.edges import chain_edges, full_bipartite_edges, grid_edges
from graphfuse.data.functions import register_function
from graphfuse.data.modalities import (
    AudioModality,
    FeatureModality,
    ImageEncoderModality,
    ImageModality,
    Modality,
    SpeechEncoderModality,
    TextEncoderModality,
    TextModality,
    Tokenizer,
    create_modality,
    list_modalities,
    mel_filter_bank,
    register_modality,
)
from graphfuse.data.nodes import NodeSet, NodeSpec
from graphfuse.data.pairs import PairGraphs
from graphfuse.data.raw import RawDataset, load_file
from graphfuse.data.schema import GraphSchema, Relation

__all__ = [
    "STRATEGIES",
    "AudioModality",
    "CallableStrategy",
    "ColumnSamples",
    "CrossEdges",
    "CrossModalStrategy",
    "FeatureModality",
    "FullBipartite",
    "GraphBuilder",
    "GraphSchema",
    "ImageEncoderModality",
    "ImageModality",
    "Modality",
    "NodeSet",
    "NodeSpec",
    "PairGraphs",
    "RawDataset",
    "RandomBipartite",
    "Relation",
    "StridedBipartite",
    "TemporalAlignment",
    "SpeechEncoderModality",
    "TextEncoderModality",
    "TextModality",
    "Tokenizer",
    "VirtualNodes",
    "chain_edges",
    "create_modality",
    "from_columns",
    "from_dgl",
    "from_networkx",
    "full_bipartite_edges",
    "grid_edges",
    "list_modalities",
    "load_file",
    "mel_filter_bank",
    "register_function",
    "register_modality",
    "register_strategy",
    "resolve_strategy",
    "to_dgl",
    "to_networkx",
]
