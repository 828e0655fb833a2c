"""The data layer: node sets, edge patterns, modalities, cross-modal strategies, the graph builder,
batching and conversion. Nothing here imports the layers above (``nn``, ``models``, ``train``)."""
from graphfuse.data.builder import GraphBuilder
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
    ImageModality,
    Modality,
    TextModality,
    Tokenizer,
    create_modality,
    list_modalities,
    mel_filter_bank,
    register_modality,
)
from graphfuse.data.nodes import NodeSet, NodeSpec
from graphfuse.data.pairs import PairGraphs
from graphfuse.data.schema import GraphSchema, Relation

__all__ = [
    "STRATEGIES",
    "AudioModality",
    "CallableStrategy",
    "CrossEdges",
    "CrossModalStrategy",
    "FeatureModality",
    "FullBipartite",
    "GraphBuilder",
    "GraphSchema",
    "ImageModality",
    "Modality",
    "NodeSet",
    "NodeSpec",
    "PairGraphs",
    "RandomBipartite",
    "Relation",
    "StridedBipartite",
    "TemporalAlignment",
    "TextModality",
    "Tokenizer",
    "VirtualNodes",
    "chain_edges",
    "create_modality",
    "from_dgl",
    "from_networkx",
    "full_bipartite_edges",
    "grid_edges",
    "list_modalities",
    "mel_filter_bank",
    "register_function",
    "register_modality",
    "register_strategy",
    "resolve_strategy",
    "to_dgl",
    "to_networkx",
]
