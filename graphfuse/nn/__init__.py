"""Neural network modules: input encoders, fusion layers, dynamic k-NN edges and the fusion encoder."""
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
from graphfuse.nn.knn import DynamicKNNEdges

__all__ = [
    "DynamicKNNEdges",
    "FeatureEncoder",
    "FlatGraph",
    "FrameEncoder",
    "FusionBlock",
    "FusionEncoder",
    "GatedRelationalConv",
    "NodeEncoders",
    "PatchEncoder",
    "RelationalConv",
    "RelationalGATConv",
    "RelationalGCNConv",
    "RelationalHGTConv",
    "Schema",
    "TokenEncoder",
    "create_conv",
    "list_convs",
    "register_conv",
]
