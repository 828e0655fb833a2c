"""Neural network modules: input encoders, fusion layers, dynamic k-NN edges, the fusion encoder, readouts and
heads. The classic (non-graph) fusion baselines live in :mod:`graphfuse.baselines`."""
from graphfuse.deprecation import moved
from graphfuse.nn.backbone_encoder import BackboneNodeEncoder
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
    "BackboneNodeEncoder",
    "ClassificationHead",
    "DynamicKNNEdges",
    "FeatureEncoder",
    "FlatGraph",
    "FrameEncoder",
    "FusionBlock",
    "FusionEncoder",
    "GatedRelationalConv",
    "LearnableTemperature",
    "MLP",
    "ModalityContext",
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
    "TokenEncoder",
    "TypeFusion",
    "TypePooling",
    "UnimodalHeads",
    "VirtualNodeReadout",
    "create_conv",
    "info_nce",
    "list_convs",
    "register_conv",
]

#: Deprecated aliases (one release): the baselines moved to graphfuse.baselines.
MOVED_TO_BASELINES = frozenset({"CrossModalTransformer", "EarlyFusion", "LateFusion", "LowRankTensorFusion",
                                "ModalityEncoder", "TensorFusion", "TransformerFusion", "dense_modalities"})


__getattr__ = moved(__name__, "graphfuse.baselines", MOVED_TO_BASELINES)
