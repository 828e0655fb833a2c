"""The fused kernels of the fusion convs, apart from the convs' readable reference paths.

* :mod:`~graphfuse.nn.conv.fused.convs`: each conv's fused forward (all relations in one pass);
* :mod:`~graphfuse.nn.conv.fused.aggregate`: CSR products and softmax attention over sparse
  edges and per-sample blocks together (:class:`EdgeAttention`, a hand-written autograd function);
* :mod:`~graphfuse.nn.conv.fused.bipartite`: GAT attention over complete bipartite blocks, dense
  (:class:`BlockAttention`) or sorted;
* :class:`KernelRules`: which kernel runs each relation, with overridable thresholds.
"""
from graphfuse.nn.conv.fused.aggregate import EdgeAttention, relation_aggregate, relational_attention
from graphfuse.nn.conv.fused.bipartite import BlockAttention, bipartite_gat, sorted_bipartite_gat
from graphfuse.nn.conv.fused.convs import gat_conv, gated_conv, gcn_conv, hgt_conv
from graphfuse.nn.conv.fused.rules import DEFAULT_RULES, KernelRules

__all__ = ["DEFAULT_RULES", "BlockAttention", "EdgeAttention", "KernelRules", "bipartite_gat", "gat_conv",
           "gated_conv", "gcn_conv", "hgt_conv", "relation_aggregate", "relational_attention",
           "sorted_bipartite_gat"]
