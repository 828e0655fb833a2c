"""Fusion layers: relational message passing over a batch's flat typed graph."""
from graphfuse.nn.conv.base import RelationalConv
from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.conv.gat import RelationalGATConv
from graphfuse.nn.conv.gated import GatedRelationalConv
from graphfuse.nn.conv.gcn import RelationalGCNConv
from graphfuse.nn.conv.hgt import RelationalHGTConv

__all__ = ["GatedRelationalConv", "KernelRules", "RelationalConv", "RelationalGATConv", "RelationalGCNConv",
           "RelationalHGTConv"]
