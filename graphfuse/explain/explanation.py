"""What :func:`~graphfuse.explain.explain` finds out about a model's predictions on a batch."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.explain import HeteroExplanation

from graphfuse.explain.attention import EdgeType, LayerAttention


@dataclass
class Explanation:
    """Explanations of a model's predictions on a batch of samples.

    Args:
        graph: the batch the model read (:meth:`GraphBuilder.collate` of the samples, on the CPU).
        kind: the model's task, ``"classification"``, ``"multilabel"``, ``"regression"`` or
            ``"retrieval"``.
        target: ``[B]`` what is explained per sample: a class or label index, an output index
            (regression), or ``0`` for retrieval (the similarity of the sample's two sides).
        score: ``[B]`` the explained value: the target's probability (softmax for classification,
            sigmoid for labels), the regression output, or the cosine similarity of the query and
            gallery embeddings.
        prediction: ``[B, K]`` probabilities or outputs (``[B, 1]`` similarities for retrieval).
        layers: the attention of every attention layer, in call order
            (:class:`~graphfuse.explain.LayerAttention`); empty for a model without attention.
        node_attributions: ``{node_type: [N]}`` gradient x input per node: the gradient of the
            score (of the target's logit for classes and labels, whose probability saturates)
            with respect to the node's encoded input (the output of the model's
            :class:`~graphfuse.nn.NodeEncoders`, so token ids, patches and frames are treated
            alike), times that input, summed over features.
        contributions: ``{modality: [B]}`` the score minus the score with that modality left out
            of the sample; ``nan`` where the sample lacks it or has nothing else to predict from.
        samples: the raw samples, as given (for the pictures).
    """

    graph: Batch
    kind: str
    target: Tensor
    score: Tensor
    prediction: Tensor
    layers: list[LayerAttention]
    node_attributions: dict[str, Tensor]
    contributions: dict[str, Tensor]
    samples: Sequence[Any] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.target.numel())

    @property
    def node_types(self) -> list[str]:
        return [t for t in self.graph.node_types if t in self.node_attributions]

    def check_sample(self, sample: int) -> int:
        """``sample`` as an index in ``[0, num_samples)`` (negative ones count from the end), or an
        ``IndexError`` saying how many samples there are."""
        count = self.num_samples
        if isinstance(sample, bool) or not isinstance(sample, int) or not -count <= sample < count:
            raise IndexError(f"Explanation holds {self.num_samples} samples; sample must be an int in "
                             f"[0, {self.num_samples}), got {sample!r}")
        return sample % self.num_samples

    def node_range(self, sample: int, node_type: str) -> tuple[int, int]:
        """``(start, end)``: the batch indices of ``sample``'s nodes of ``node_type``."""
        sample = self.check_sample(sample)
        if node_type not in self.graph.node_types:
            raise KeyError(f"node type {node_type!r} is not in the batch; it has {self.graph.node_types}")
        ptr = self.graph[node_type].ptr
        return int(ptr[sample]), int(ptr[sample + 1])

    def num_nodes(self, sample: int, node_type: str) -> int:
        start, end = self.node_range(sample, node_type)
        return end - start

    def _local_edges(self, sample: int, src: str, dst: str, edge_index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(chosen [E], dst rows, src columns)``: which edges of a batch-level ``edge_index`` end
        in ``sample`` and their ends as indices among the sample's nodes of each type."""
        d_start, d_end = self.node_range(sample, dst)
        chosen = (edge_index[1] >= d_start) & (edge_index[1] < d_end)
        return chosen, edge_index[1, chosen] - d_start, edge_index[0, chosen] - self.node_range(sample, src)[0]

    # Attention ----------------------------------------------------------------------------------
    def attention_layers(self, query: str, key: str) -> list[int]:
        """Indices into :attr:`layers` of the layers in which ``query`` nodes attend to ``key`` nodes."""
        return [i for i, layer in enumerate(self.layers)
                if any(e[0] == key and e[2] == query for e in layer.weights)]

    def attention(self, sample: int, query: str, key: str, layer: int = -1, head: int | None = None) -> Tensor:
        """``[n_query, n_key]``: the weight each ``query`` node of ``sample`` gives each ``key`` node
        (0 where no edge joins them), in the ``layer``-th layer where they meet (an index into
        :meth:`attention_layers`; ``-1``, the last), averaged over heads or of one ``head``."""
        if not self.layers:
            raise ValueError("This model recorded no attention: it has no attention layers (conv='gcn' and "
                             "'gated' and the baselines have none); use node_attributions or contributions, or "
                             "train a graph model with conv='gat' or 'hgt'")
        candidates = self.attention_layers(query, key)
        if not candidates:
            pairs = sorted({(e[2], e[0]) for layer in self.layers for e in layer.weights})
            raise ValueError(f"No layer has {query!r} nodes attend to {key!r} nodes; the (query, key) pairs are "
                             f"{pairs}")
        if not -len(candidates) <= layer < len(candidates):
            raise IndexError(f"{query!r} nodes attend to {key!r} nodes in {len(candidates)} layers; layer must be in "
                             f"[{-len(candidates)}, {len(candidates)}), got {layer}")
        matrix = torch.zeros(self.num_nodes(sample, query), self.num_nodes(sample, key))
        for edge_type, (edge_index, alpha) in self.layers[candidates[layer]].weights.items():
            if edge_type[0] != key or edge_type[2] != query:
                continue
            if head is not None and not 0 <= head < alpha.size(1):
                raise IndexError(f"the layer has {alpha.size(1)} heads; head must be in [0, {alpha.size(1)}), "
                                 f"got {head}")
            chosen, rows, cols = self._local_edges(sample, key, query, edge_index)
            weight = alpha.mean(1) if head is None else alpha[:, head]
            matrix.index_put_((rows, cols), weight[chosen], accumulate=True)
        return matrix

    def rollout(self, sample: int, residual: float = 0.5) -> tuple[Tensor, dict[str, tuple[int, int]]]:
        r"""Attention rollout (Abnar and Zuidema, 2020) over every attention layer: how much each
        node's final state draws on each node's input, following the attention through all
        layers. Each layer's attention :math:`\mathbf{A}` over the sample's nodes (heads averaged,
        rows normalised over every relation) becomes :math:`r\mathbf{I} + (1 - r)\mathbf{A}` for the
        residual connection, and the layers multiply:
        :math:`\mathbf{R} = \hat{\mathbf{A}}_L \cdots \hat{\mathbf{A}}_1`.

        Returns ``R`` ``[n, n]`` (rows sum to 1) over the sample's nodes, node type after node type,
        and each type's ``(start, end)`` rows in it."""
        if not 0 <= residual <= 1:
            raise ValueError(f"rollout 'residual' must be in [0, 1], got {residual!r}")
        if not self.layers:
            raise ValueError("This model recorded no attention to roll out (it has no attention layers)")
        offsets, total = {}, 0
        for node_type in self.graph.node_types:
            start, end = self.node_range(sample, node_type)
            offsets[node_type] = (total, total + end - start)
            total += end - start
        result = torch.eye(total)
        for layer in self.layers:
            attention = torch.zeros(total, total)
            for (src, _, dst), (edge_index, alpha) in layer.weights.items():
                chosen, rows, cols = self._local_edges(sample, src, dst, edge_index)
                attention.index_put_((rows + offsets[dst][0], cols + offsets[src][0]), alpha[chosen].mean(1),
                                     accumulate=True)
            row_sum = attention.sum(1, keepdim=True)
            attention = torch.where(row_sum > 0, attention / row_sum.clamp_min(1e-12), torch.eye(total))
            result = (residual * torch.eye(total) + (1 - residual) * attention) @ result
        return result, offsets

    # Attributions ---------------------------------------------------------------------------------
    def sample_attributions(self, sample: int) -> dict[str, Tensor]:
        """``{node_type: [n]}``: gradient x input of each of ``sample``'s nodes."""
        out = {}
        for node_type, values in self.node_attributions.items():
            start, end = self.node_range(sample, node_type)
            out[node_type] = values[start:end]
        return out

    def modality_attributions(self) -> dict[str, Tensor]:
        """``{node_type: [B]}``: gradient x input summed over each sample's nodes of each type."""
        return {node_type: torch.zeros(self.num_samples).index_add(0, self.graph[node_type].batch, values)
                for node_type, values in self.node_attributions.items()}

    def to_pyg(self, sample: int) -> HeteroExplanation:
        """One sample as PyG's :class:`~torch_geometric.explain.HeteroExplanation`: its graph, a
        ``node_mask`` ``[n, 1]`` per node type (gradient x input) and, for a model with attention,
        an ``edge_mask`` ``[E]`` per edge type (attention averaged over heads and over the layers
        that read the relation), so PyG's explanation tools (``get_explanation_subgraph``,
        thresholds, ``visualize_feature_importance``) apply."""
        sample = self.check_sample(sample)
        explanation = HeteroExplanation()
        for node_type in self.node_types:
            start, end = self.node_range(sample, node_type)
            store = self.graph[node_type]
            explanation[node_type].x = store.x[start:end]
            explanation[node_type].node_mask = self.node_attributions[node_type][start:end].unsqueeze(-1)
        for edge_type in self.graph.edge_types:
            src, _, dst = edge_type
            if src not in self.node_attributions or dst not in self.node_attributions:
                continue
            _, rows, cols = self._local_edges(sample, src, dst, self.graph[edge_type].edge_index)
            explanation[edge_type].edge_index = torch.stack([cols, rows])
            mask = self._edge_mask(sample, edge_type, rows, cols)
            if mask is not None:
                explanation[edge_type].edge_mask = mask
        explanation.validate_masks()
        return explanation

    def _edge_mask(self, sample: int, edge_type: EdgeType, rows: Tensor, cols: Tensor) -> Tensor | None:
        src, _, dst = edge_type
        layers = [layer for layer in self.layers if edge_type in layer.weights]
        if not layers:
            return None
        dense = torch.zeros(self.num_nodes(sample, dst), self.num_nodes(sample, src))
        for layer in layers:
            edge_index, alpha = layer.weights[edge_type]
            chosen, dst_rows, src_cols = self._local_edges(sample, src, dst, edge_index)
            dense.index_put_((dst_rows, src_cols), alpha[chosen].mean(1) / len(layers), accumulate=True)
        return dense[rows, cols]
