"""The fused kernels of the fusion convs, apart from the convs' readable reference paths.

* :mod:`~graphfuse.nn.conv.fused.convs`: each conv's fused forward (all relations in one pass);
* :mod:`~graphfuse.nn.conv.fused.aggregate`: CSR products and softmax attention over sparse
  edges and per-sample blocks together (:class:`EdgeAttention` and :class:`EdgeScores`,
  hand-written autograd functions);
* :mod:`~graphfuse.nn.conv.fused.bipartite`: attention over complete bipartite blocks, each
  relation as long as its own node types: GAT's dense (:class:`BlockAttention`) or sorted
  (:class:`SortedBlockAttention`), HGT's dot products (:class:`DotBlockAttention`);
* :class:`KernelRules`: which kernel runs each relation, with overridable thresholds;
* :mod:`~graphfuse.nn.conv.fused.first_order`: the attention kernels are differentiable once (second
  derivatives take the reference path) and say so when asked for more.
"""
from graphfuse.nn.conv.fused.aggregate import EdgeAttention, EdgeScores, relation_aggregate, relational_attention
from graphfuse.nn.conv.fused.bipartite import (
    BlockAttention,
    BlockSums,
    DotBlockAttention,
    GATBlocks,
    SortedBlockAttention,
    bipartite_gat,
    block_groups,
    sorted_bipartite_gat,
)
from graphfuse.nn.conv.fused.convs import gat_conv, gated_conv, gcn_conv, hgt_conv
from graphfuse.nn.conv.fused.rules import DEFAULT_RULES, KernelRules

__all__ = ["DEFAULT_RULES", "BlockAttention", "BlockSums", "DotBlockAttention", "EdgeAttention", "EdgeScores",
           "GATBlocks", "KernelRules", "SortedBlockAttention", "bipartite_gat", "block_groups", "gat_conv",
           "gated_conv", "gcn_conv", "hgt_conv", "relation_aggregate", "relational_attention", "sorted_bipartite_gat"]
