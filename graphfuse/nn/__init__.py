"""Neural network modules: input encoders, fusion layers, dynamic k-NN edges, the fusion encoder, readouts and heads."""
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
from graphfuse.nn.readout import Readout, TypeFusion, TypePooling, VirtualNodeReadout

__all__ = [
    "ClassificationHead",
    "DynamicKNNEdges",
    "FeatureEncoder",
    "FlatGraph",
    "FrameEncoder",
    "FusionBlock",
    "FusionEncoder",
    "GatedRelationalConv",
    "LearnableTemperature",
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
    "VirtualNodeReadout",
    "create_conv",
    "info_nce",
    "list_convs",
    "register_conv",
]
