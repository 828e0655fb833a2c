"""Neural network modules: input encoders, fusion layers, dynamic k-NN edges, the fusion encoder, readouts, heads
and the classic (non-graph) fusion baselines."""
from graphfuse.nn.baselines import (
    CrossModalTransformer,
    EarlyFusion,
    LateFusion,
    LowRankTensorFusion,
    ModalityEncoder,
    TensorFusion,
    TransformerFusion,
    dense_modalities,
)
from graphfuse.nn.context import ModalityContext
from graphfuse.nn.contrastive import LearnableTemperature, info_nce
from graphfuse.nn.conv import (
    GatedRelationalConv,
    RelationalConv,
    RelationalGATConv,
    RelationalGCNConv,
    RelationalHGTConv,
)
from graphfuse.nn.encoders import FeatureEncoder, FrameEncoder, NodeEncoders, PatchEncoder, TokenEncoder
from graphfuse.nn.flat import FlatGraph, Schema
from graphfuse.nn.fusion import FusionBlock, FusionEncoder, create_conv, list_convs, register_conv
from graphfuse.nn.heads import ClassificationHead, ProjectionHead, RegressionHead
from graphfuse.nn.knn import DynamicKNNEdges
from graphfuse.nn.mlp import MLP
from graphfuse.nn.readout import Readout, TypeFusion, TypePooling, VirtualNodeReadout
from graphfuse.nn.unimodal import MultimodalOutput, UnimodalHeads

__all__ = [
    "ClassificationHead",
    "CrossModalTransformer",
    "DynamicKNNEdges",
    "EarlyFusion",
    "FeatureEncoder",
    "FlatGraph",
    "FrameEncoder",
    "FusionBlock",
    "FusionEncoder",
    "GatedRelationalConv",
    "LateFusion",
    "LearnableTemperature",
    "LowRankTensorFusion",
    "MLP",
    "ModalityContext",
    "ModalityEncoder",
    "MultimodalOutput",
    "NodeEncoders",
    "PatchEncoder",
    "ProjectionHead",
    "Readout",
    "RegressionHead",
    "RelationalConv",
    "RelationalGATConv",
    "RelationalGCNConv",
    "RelationalHGTConv",
    "Schema",
    "TensorFusion",
    "TokenEncoder",
    "TransformerFusion",
    "TypeFusion",
    "TypePooling",
    "UnimodalHeads",
    "VirtualNodeReadout",
    "create_conv",
    "dense_modalities",
    "info_nce",
    "list_convs",
    "register_conv",
]
