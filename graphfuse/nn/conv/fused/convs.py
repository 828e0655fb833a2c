"""The fused forward of each conv: all relations in one pass, complete bipartite ones as blocks.

Each function computes what its conv's reference :meth:`propagate` computes (the conformance
tests check both paths against each other), by other means:

* a node type is projected once into all its relations (stacked weights, one matmul), and GAT
  logits fold into the same matmul (:math:`\\mathbf{a}^{\\top} \\mathbf{W}_r` is a vector);
* sparse relations aggregate with one CSR product (:func:`relation_aggregate`,
  :class:`EdgeAttention`), without per-edge ``[E, C]`` messages;
* complete bipartite relations (:class:`KernelRules` ``dense_blocks``) send the same sum to every
  destination of a sample (pooled once per sample) or run attention as per-sample blocks
  (:func:`bipartite_gat`, :func:`relational_attention`).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from graphfuse.nn.conv.fused.aggregate import (
    EdgeScores,
    dense_scale,
    edge_layout,
    pooled_by_sample,
    received_rows,
    relation_aggregate,
    relational_attention,
    sparse_adjacency,
)
from graphfuse.nn.conv.fused.bipartite import gat_block_sums, hgt_block_sums
from graphfuse.nn.conv.fused.first_order import require_first_order
from graphfuse.nn.conv.fused.rules import KernelRules
from graphfuse.nn.flat import FlatGraph


def kernel_graph(graph: FlatGraph, rules: KernelRules) -> FlatGraph:
    """``graph`` as the fused kernels see it under ``rules``: without dense blocks unless
    ``rules.dense_blocks``."""
    if rules.dense_blocks or not any(graph.dense):
        return graph
    return graph.cached("without_dense", lambda: graph.with_dense(False))


def relation_count(graph: FlatGraph, self_loops: bool) -> Tensor:
    """``[num_nodes]``: the number of relations that bring each node an edge (1 for none)."""
    def make() -> Tensor:
        received = received_rows(graph, self_loops).float()
        count = torch.zeros(graph.num_nodes, device=graph.device).index_add(0, graph.group_node, received)
        return count.clamp_min(1)

    return graph.cached(("relation_count", self_loops), make)


def gcn_conv(conv, x: Tensor, graph: FlatGraph) -> Tensor:
    """:class:`~graphfuse.nn.RelationalGCNConv`: one CSR product aggregates every sparse relation,
    each node type does one matmul with its relations' weights stacked (and its root weight, both
    written into its rows of one output, :class:`TypeProjection`), and a complete bipartite relation
    is pooled and transformed once per sample instead of once per node."""
    graph = kernel_graph(graph, conv.rules)
    adjacency = sparse_adjacency(graph, conv.normalize, conv.add_self_loops)
    neighbours = adjacency.product(x)
    inverse_count = relation_count(graph, conv.add_self_loops).to(x.dtype).reciprocal() if conv.aggr == "mean" else None
    if inverse_count is not None:  # each (node, relation) row by its node's count
        node_of_row = graph.group_node.index_select(0, adjacency.group_rows)
        neighbours = neighbours * inverse_count.index_select(0, node_of_row).unsqueeze(-1).to(neighbours.dtype)
    dense = _gcn_dense_messages(conv, x, graph)
    types = range(graph.schema.num_node_types)
    inputs = [neighbours, *([x] if conv.root is not None else [])]
    weights = [conv.weight[adjacency.relations[t]].reshape(-1, conv.out_channels) for t in types]
    if conv.root is not None:
        weights += [conv.root[t] for t in types]
    out = TypeProjection.apply(graph.num_nodes_per_type, *inputs, *weights)
    if dense is not None:
        dense = dense[graph.type_sample]
        out = out + (dense * inverse_count.unsqueeze(-1) if inverse_count is not None else dense)
    if conv.bias is not None:
        out = out + conv.bias
    return out


def _gcn_dense_messages(conv, x: Tensor, graph: FlatGraph) -> Tensor | None:
    """``[T * B, out]``: the complete bipartite relations' messages per (node type, sample)."""
    blocks = graph.dense_blocks(conv.add_self_loops)
    if blocks is None:
        return None
    schema, device = graph.schema, graph.device
    src_type = torch.tensor(schema.src_type, device=device)[blocks.relation]
    dst_type = torch.tensor(schema.dst_type, device=device)[blocks.relation]
    pooled = pooled_by_sample(x, graph)[src_type] * dense_scale(graph, blocks.relation, conv.normalize).unsqueeze(
        -1).to(x.dtype)
    messages = torch.bmm(pooled, conv.weight[blocks.relation].to(pooled.dtype))
    B = graph.num_samples
    index = (dst_type.unsqueeze(-1) * B + torch.arange(B, device=device)).flatten()
    return messages.new_zeros(schema.num_node_types * B, conv.out_channels).index_add(0, index,
                                                                                      messages.flatten(0, 1))


def _projection_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    """The dtype a matmul of ``tensors`` runs in: their promoted dtype, or autocast's for float32."""
    dtype = functools.reduce(torch.promote_types, (tensor.dtype for tensor in tensors))
    if dtype == torch.float32 and torch.is_autocast_enabled(tensors[0].device.type):
        dtype = torch.get_autocast_dtype(tensors[0].device.type)
    return dtype


class TypeProjection(torch.autograd.Function):
    """Each node type's rows of several inputs times that type's weights, summed into one output:
    ``TypeProjection.apply(counts, x_1, ..., x_k, *weights)``, with the ``k * T`` weights ``w_it``
    input by input (``T = len(counts)`` node types), gives ``out[nodes of type t] = sum_i x_it @
    w_it`` ``[sum(counts), C_out]``. ``x_it`` is input ``i``'s part for type ``t`` (the types' parts
    lie in order) seen as ``[counts[t], w_it.size(0)]``: a GCN's neighbour sums hold one row per
    (node, relation), its features one per node.

    Each product is written into its type's rows of the output, where per-type matmuls would be
    concatenated, and the backward writes each input's gradient into its rows, where a split's
    backward concatenates them (2 to 3% of a GCN training step on CPU). Under autocast the
    products run in its dtype, as a plain matmul's would. Differentiated twice (``create_graph``), the
    backward runs as plain matmuls."""

    @staticmethod
    def forward(ctx, counts: list[int], *tensors: Tensor) -> Tensor:
        num_inputs = len(tensors) // (len(counts) + 1)
        dtype = _projection_dtype(tensors)
        inputs = [x.to(dtype).contiguous() for x in tensors[:num_inputs]]
        weights = [w.to(dtype) for w in tensors[num_inputs:]]
        per_input = [weights[i * len(counts):(i + 1) * len(counts)] for i in range(num_inputs)]
        parts = [_type_parts(x, counts, own) for x, own in zip(inputs, per_input, strict=True)]
        out = inputs[0].new_empty(sum(counts), weights[0].size(1))
        with torch.autocast(device_type=out.device.type, enabled=False):
            for t, rows in enumerate(out.split(counts)):
                for i in range(num_inputs):
                    torch.addmm(rows, parts[i][t], per_input[i][t], beta=1 if i else 0, out=rows)
        ctx.counts, ctx.num_inputs, ctx.dtypes = counts, num_inputs, [tensor.dtype for tensor in tensors]
        ctx.save_for_backward(*inputs, *weights)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        saved, counts, num_inputs = ctx.saved_tensors, ctx.counts, ctx.num_inputs
        inputs, weights = saved[:num_inputs], saved[num_inputs:]
        grads = grad_out.to(weights[0].dtype).split(counts)
        input_needed, weight_needed = ctx.needs_input_grad[1:num_inputs + 1], ctx.needs_input_grad[num_inputs + 1:]
        grad_inputs, grad_weights = [], []
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            for i, (x, needed) in enumerate(zip(inputs, input_needed, strict=True)):
                own = weights[i * len(counts):(i + 1) * len(counts)]
                grad_weights += [part.t() @ grad if weight_needed[i * len(counts) + t] else None
                                 for t, (part, grad) in enumerate(zip(_type_parts(x, counts, own), grads, strict=True))]
                if not needed:
                    grad_inputs.append(None)
                elif torch.is_grad_enabled():  # create_graph: the differentiable way
                    grad_inputs.append(torch.cat([(grad @ w.t()).reshape(-1, x.size(1))
                                                  for grad, w in zip(grads, own, strict=True)]))
                else:
                    grad_inputs.append(torch.empty_like(x))
                    for grad, w, rows in zip(grads, own, _type_parts(grad_inputs[-1], counts, own), strict=True):
                        torch.mm(grad, w.t(), out=rows)
        return None, *(None if grad is None else grad.to(dtype)
                       for grad, dtype in zip([*grad_inputs, *grad_weights], ctx.dtypes, strict=True))


def _type_parts(x: Tensor, counts: Sequence[int], weights: Sequence[Tensor]) -> list[Tensor]:
    """Each node type's rows of a contiguous ``x``, as ``[counts[t], weights[t].size(0)]`` views."""
    rows = [count * w.size(0) // x.size(1) for count, w in zip(counts, weights, strict=True)]
    return [part.view(count, w.size(0)) for part, count, w in zip(x.split(rows), counts, weights, strict=True)]


class HeadFirstProjection(torch.autograd.Function):
    """Every node type's projection into its outgoing relations, written straight into the
    head-first values ``[H, num_source_rows, C]``: ``HeadFirstProjection.apply(x, sizes, w_0,
    w_1, ...)`` with the flat features ``x`` ``[num_nodes, F]`` (node types in order, ``sizes[t]``
    nodes each) and ``w_t`` ``[H, F, R_t, C]`` gives, for node ``i`` of type ``t`` and its ``r``-th
    outgoing relation, ``out[h, source_row_offsets[t] + i * R_t + r] = x_t[i] @ w_t[h, :, r]``.
    With one more weight ``s_t`` ``[F, L_t]`` per type after them (GAT's folded logits), it also
    returns each type's plain product ``x_t @ s_t``: ``(out, p_0, p_1, ...)``.

    One matmul per (type, head) into its slice of the output: projecting all heads at once needs
    a copy into head-first order and the types a concatenation, and their backwards copy back.
    The backward adds every product's gradient straight into the rows of ``x``'s (a per-type
    product of its own would come back through a split's concatenation and an autograd sum).
    Under autocast the products run in its dtype, as a plain matmul's would.
    """

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], *weights: Tensor):
        weights, sides = weights[:len(sizes)], weights[len(sizes):]
        dtype = _projection_dtype((x, weights[0]))
        heads, channels = weights[0].size(0), weights[0].size(-1)
        flat = [w.to(dtype).reshape(heads, w.size(1), -1) for w in weights]  # [H, F, R_t * C]
        sides = [w.to(dtype) for w in sides]
        rows = [n * w.size(-1) // channels for n, w in zip(sizes, flat, strict=True)]
        out = x.new_empty(heads, sum(rows), channels, dtype=dtype)
        products = []
        with torch.autocast(device_type=x.device.type, enabled=False):
            for t, (node, w, part) in enumerate(zip(torch.split(x.to(dtype), sizes), flat, torch.split(out, rows, 1),
                                                    strict=True)):
                for h in range(heads):
                    torch.mm(node, w[h], out=part[h].view(node.size(0), w.size(-1)))
                if sides:
                    products.append(node @ sides[t])
        ctx.sizes, ctx.rows, ctx.dtypes = sizes, rows, (x.dtype, [w.dtype for w in (*weights, *sides)])
        ctx.shapes = [w.shape for w in weights]
        ctx.save_for_backward(x, *flat, *sides)
        return (out, *products) if sides else out

    @staticmethod
    def backward(ctx, grad_out: Tensor, *grad_products: Tensor):
        require_first_order("HeadFirstProjection")
        x, *saved = ctx.saved_tensors
        flat, sides = saved[:len(ctx.sizes)], saved[len(ctx.sizes):]
        dtype = flat[0].dtype
        grad_out = grad_out.to(dtype).contiguous()
        heads = grad_out.size(0)
        nodes = torch.split(x.to(dtype), ctx.sizes)
        grad_x = x.new_empty(x.shape, dtype=dtype)
        grad_weights, grad_sides = [], []
        with torch.autocast(device_type=x.device.type, enabled=False):
            for t, (node, w, part, grad_node) in enumerate(zip(nodes, flat, torch.split(grad_out, ctx.rows, 1),
                                                               torch.split(grad_x, ctx.sizes), strict=True)):
                part = part.view(heads, node.size(0), w.size(-1))  # [H, n_t, R_t * C], each head contiguous
                grad_w = torch.empty_like(w)
                for h in range(heads):
                    # Into the rows directly, the heads summed by the matmuls themselves.
                    torch.addmm(grad_node, part[h], w[h].t(), beta=1 if h else 0, out=grad_node)
                    torch.mm(node.t(), part[h], out=grad_w[h])
                grad_weights.append(grad_w)
                if sides:
                    grad = grad_products[t].to(dtype)
                    torch.addmm(grad_node, grad, sides[t].t(), out=grad_node)
                    grad_sides.append(node.t() @ grad)
        x_dtype, w_dtypes = ctx.dtypes
        grads = [g.view(shape) for g, shape in zip(grad_weights, ctx.shapes, strict=True)] + grad_sides
        return grad_x.to(x_dtype), None, *(g.to(d) for g, d in zip(grads, w_dtypes, strict=True))


def gat_conv(conv, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
    """:class:`~graphfuse.nn.RelationalGATConv`: each node type projected into all its outgoing
    relations by one matmul that also gives the attention logits; sparse relations gather per
    edge, complete bipartite ones run as per-sample blocks
    (:func:`~graphfuse.nn.conv.fused.bipartite.gat_block_sums`)."""
    graph = kernel_graph(graph, conv.rules)
    schema, H, C = graph.schema, conv.heads, conv.out_channels
    # Logits a^T W_r x are x @ (W_r a): folded into each type's one matmul as extra columns.
    weight = conv.weight.view(-1, conv.in_channels, H, C)
    src_logit = (weight * conv.att_src.unsqueeze(1)).sum(-1)
    dst_logit = (weight * conv.att_dst.unsqueeze(1)).sum(-1)
    value_weights, side_weights, widths = [], [], []
    for t in range(schema.num_node_types):
        out_rel, in_rel = list(schema.out_relations[t]), list(schema.in_relations[t])
        value_weights.append(weight[out_rel].permute(2, 1, 0, 3))  # [H, in, R_t, C]
        weights = [src_logit[out_rel].permute(1, 0, 2).reshape(conv.in_channels, -1),
                   dst_logit[in_rel].permute(1, 0, 2).reshape(conv.in_channels, -1)]
        if conv.root is not None:
            weights.append(conv.root[t])
        side_weights.append(torch.cat(weights, 1))
        widths.append([w.size(1) for w in weights])
    values, *products = HeadFirstProjection.apply(x, graph.num_nodes_per_type, *value_weights, *side_weights)
    src_logits, dst_logits, roots = [], [], []
    for product, width in zip(products, widths, strict=True):
        parts = torch.split(product, width, dim=1)
        src_logits.append(parts[0].reshape(-1, H))
        dst_logits.append(parts[1].reshape(-1, H))
        if conv.root is not None:
            roots.append(parts[2])
    src_logits, dst_logits = torch.cat(src_logits), torch.cat(dst_logits)

    per_relation = conv.softmax == "relation"
    layout = edge_layout(graph, conv.add_self_loops, "group" if per_relation else "node")
    sparse_scores = F.leaky_relu(src_logits.t().index_select(1, layout.col)
                                 + dst_logits.t().index_select(1, layout.group_row), conv.negative_slope)
    blocks = graph.dense_blocks(conv.add_self_loops)
    dense_scores = block_sums = None
    if blocks is not None:
        if return_weights or (conv.training and conv.dropout > 0):  # per-edge weights are needed
            src_part, dst_part = src_logits[blocks.src_row], dst_logits[blocks.dst_group_row]
            dense_scores = F.leaky_relu(dst_part.permute(0, 1, 3, 2).unsqueeze(-1)
                                        + src_part.permute(0, 1, 3, 2).unsqueeze(-2), conv.negative_slope)
        else:
            block_sums = gat_block_sums(graph, src_logits, dst_logits, values, conv.add_self_loops,
                                        conv.negative_slope, conv.rules)
    out, weights = relational_attention(graph, values, sparse_scores, dense_scores, conv.add_self_loops,
                                        per_relation, conv.dropout, conv.training, return_weights, block_sums)
    if per_relation:
        out = out.new_zeros(graph.num_nodes, *out.shape[1:]).index_add(0, graph.group_node, out)
        if conv.aggr == "mean":
            out = out / relation_count(graph, conv.add_self_loops).view(-1, 1, 1).to(out.dtype)
    out = out.reshape(-1, H * C) if conv.concat else out.mean(1)
    if conv.root is not None:
        root = torch.cat(roots)
        out = out + (root if conv.concat else root.view(-1, H, C).mean(1))
    if conv.bias is not None:
        out = out + conv.bias
    return out, weights


def hgt_conv(conv, x: Tensor, graph: FlatGraph, return_weights: bool) -> tuple[Tensor, dict | None]:
    """:class:`~graphfuse.nn.RelationalHGTConv`: keys and values per (node, outgoing relation) with
    the priors folded into the keys; sparse relations' scores as sampled products
    (:class:`EdgeScores`), complete bipartite relations as per-sample blocks
    (:func:`~graphfuse.nn.conv.fused.bipartite.hgt_block_sums`), both softmaxed together by
    :func:`relational_attention`."""
    graph = kernel_graph(graph, conv.rules)
    schema, H = graph.schema, conv.heads
    D = conv.out_channels // H
    queries, keys, values = [], [], []
    for t, node in enumerate(graph.split(x)):
        out_rel = list(schema.out_relations[t])
        k, q, v = (node @ conv.kqv_weight[t] + conv.kqv_bias[t]).view(-1, 3, H, D).unbind(1)
        queries.append(q)
        # Relation transforms per head, priors folded into the keys: score = q . (k W_att mu) / sqrt(D).
        key_rel = conv.k_rel[out_rel] * conv.p_rel[out_rel].view(len(out_rel), H, 1, 1)
        keys.append(torch.einsum("nhd,rhde->nrhe", k, key_rel.to(k.dtype)).reshape(-1, H, D))
        values.append(torch.einsum("nhd,rhde->nrhe", v, conv.v_rel[out_rel].to(v.dtype)).reshape(-1, H, D))
    scale = 1.0 / math.sqrt(D)
    # Head-first, so that each head's part is contiguous for the matrix products.
    queries = (torch.cat(queries) * scale).permute(1, 0, 2).contiguous()
    keys, values = (torch.cat(parts).permute(1, 0, 2).contiguous() for parts in (keys, values))
    per_relation = conv.softmax == "relation"
    layout = edge_layout(graph, False, "group" if per_relation else "node")
    # Each edge's score is its destination's query (per group row with per-relation softmax) against its key.
    sparse_scores = EdgeScores.apply(queries[:, graph.group_node] if per_relation else queries, keys, layout)
    blocks = graph.dense_blocks()
    dense_scores = block_sums = None
    if blocks is not None:
        if return_weights or (conv.training and conv.dropout > 0):  # per-edge weights are needed
            dense_scores = torch.einsum("hrbid,hrbjd->rbhij", queries[:, blocks.dst_node], keys[:, blocks.src_row])
        else:
            block_sums = hgt_block_sums(graph, queries, keys, values, conv.rules)
    out, weights = relational_attention(graph, values, sparse_scores, dense_scores, False, per_relation,
                                        conv.dropout, conv.training, return_weights, block_sums)
    if per_relation:
        out = out.new_zeros(graph.num_nodes, H, D).index_add(0, graph.group_node, out)
    out = F.gelu(out.reshape(-1, conv.out_channels))
    outs = [part @ conv.out_weight[t] + conv.out_bias[t] for t, part in enumerate(graph.split(out))]
    out = torch.cat(outs) if len(outs) > 1 else outs[0]
    if conv.in_channels == conv.out_channels:
        gate = torch.sigmoid(conv.skip)[graph.node_type].unsqueeze(-1)
        out = gate * out + (1 - gate) * x
    return out, weights


def gated_conv(conv, x: Tensor, graph: FlatGraph) -> Tensor:
    """:class:`~graphfuse.nn.GatedRelationalConv`: neighbour means of all relations from one CSR
    product and per-sample pooling (:func:`relation_aggregate`), gates per node type."""
    graph = kernel_graph(graph, conv.rules)
    schema = graph.schema
    means, received = relation_aggregate(x, graph, conv.normalize)
    outs = []
    for t, node in enumerate(graph.split(x)):
        in_rel = list(schema.in_relations[t])
        start, n = graph.group_row_offsets[t], node.size(0)
        parts = [node @ conv.root[t]] if conv.root is not None else []
        if in_rel:
            grouped = means[start:start + n * len(in_rel)].view(n, len(in_rel), x.size(-1))
            messages = torch.einsum("nrc,rcd->nrd", grouped, conv.weight[in_rel].to(grouped.dtype))
            gate_input = torch.einsum("nc,rcd->nrd", node, conv.gate_node[in_rel].to(node.dtype))
            gates = torch.sigmoid(gate_input + torch.einsum("nrc,rcd->nrd", messages,
                                                            conv.gate_message[in_rel].to(messages.dtype))
                                  + conv.gate_bias[in_rel])
            mask = received[start:start + n * len(in_rel)].view(n, len(in_rel), 1)
            parts.append((gates * messages * mask).sum(1))
        outs.append(sum(parts) if parts else node.new_zeros(n, conv.out_channels))
    out = torch.cat(outs) if len(outs) > 1 else outs[0]
    if conv.bias is not None:
        out = out + conv.bias
    return out
