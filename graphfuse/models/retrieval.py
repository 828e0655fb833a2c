"""Cross-modal retrieval: a graph dual encoder into a shared space, and a re-ranker that scores a
query and a candidate jointly on their cross-modal graph."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_int, check_layers
from graphfuse.data import GraphBuilder, GraphSchema, PairGraphs
from graphfuse.data.layout import batch_layout
from graphfuse.deprecation import renamed
from graphfuse.models.backbone import ATTENTION_CONVS, GraphBackbone, as_batch, as_schema
from graphfuse.nn import NodeEncoders, ProjectionHead, Readout
from graphfuse.nn.contrastive import LearnableTemperature

SIDES = ("query", "gallery")
#: The options of every dual encoder's factory (graph and baseline) that only retrieval takes.
RETRIEVAL_OPTIONS = frozenset({"query", "gallery", "embed_dim", "temperature"})
#: The retrieval options of the graph dual encoder's re-ranker.
RERANK_OPTIONS = frozenset({"rerank", "rerank_conv", "rerank_negatives"})


def _side_types(schema: GraphSchema, types: Sequence[str], name: str) -> tuple[str, ...]:
    types = (types,) if isinstance(types, str) else tuple(types)
    unknown = [t for t in types if t not in schema.node_types]
    if not types or unknown:
        raise ValueError(f"GraphRetrievalModel '{name}' must name node types of the builder {schema.node_types}, "
                         f"got {list(types)}")
    return types


def _samples_without(batch, types: Sequence[str]) -> list[int]:
    """The samples with no node of ``types``, which would fail deep in the readout: read off the
    layout a collated batch carries (no device sync), else counted on the device (one sync)."""
    layout = batch_layout(batch)
    if layout is not None:
        zeros = (0,) * layout.num_samples
        per_sample = [sum(counts) for counts in zip(*(layout.counts.get(t, zeros) for t in types), strict=True)]
        return [sample for sample, nodes in enumerate(per_sample) if nodes == 0]
    nodes = sum(torch.bincount(batch[t].batch, minlength=batch.num_graphs) for t in types if t in batch.node_types)
    return torch.nonzero(torch.as_tensor(nodes) == 0).flatten().tolist()


def check_sides(owner: str, query_types: Sequence[str], gallery_types: Sequence[str]) -> None:
    """A dual encoder's two sides read disjoint node types."""
    shared = set(query_types) & set(gallery_types)
    if shared:
        raise ValueError(f"{owner} sides must not share node types, both hold {sorted(shared)}")


def pick_side(side: str, query_types: tuple[str, ...], gallery_types: tuple[str, ...]) -> tuple[str, ...]:
    """The node types of ``side`` (``"query"`` or ``"gallery"``) of a dual encoder."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    return query_types if side == "query" else gallery_types


class GraphRetrievalModel(torch.nn.Module):
    r"""A dual encoder for cross-modal retrieval with an optional joint re-ranker.

    Each side (``query`` node types, e.g. text; ``gallery`` node types, e.g. image, or any
    subset such as image + audio) is encoded by the *same* encoders and fusion blocks on its own
    subgraph (its nodes and the relations among them), read out and projected into a shared,
    L2-normalised space. A gallery is therefore encoded (indexed) once, independently of the
    queries. Training minimises the symmetric InfoNCE loss with a learnable temperature:

    .. math::
        \mathcal{L} = \tfrac{1}{2}\big(\mathrm{CE}(s\,Q G^{\top}, I) + \mathrm{CE}(s\,G Q^{\top}, I)\big)

    The re-ranker scores a (query, candidate) pair jointly: the two are joined into one sample
    graph, with the builder's cross-modal edges between them, encoded by the same input encoders,
    fused by its own blocks (``rerank_conv``) and read out into a logit :math:`r(q, c)`. It trains
    on each query's hardest in-batch negatives under the dual encoder (and each gallery item's) by
    cross-entropy over the positive and those negatives. :meth:`rerank` reorders a query's top-k
    candidates by the sum of the two models' logits,
    :math:`s\,\mathbf{q}^{\top}\mathbf{c} + r(q, c)` (a product of their softmax distributions).

    Args:
        schema (GraphSchema or GraphBuilder): the node types, relations and input sizes of the data
            (``builder.schema()``; a builder stands for its schema).
        query (Sequence[str], optional): node types of the query side. (default: :obj:`("text",)`)
        gallery (Sequence[str], optional): node types of the gallery side.
            (default: :obj:`("image",)`)
        hidden_channels (int, optional): features per node. (default: :obj:`64`)
        embed_dim (int, optional): size of the shared space (default: ``hidden_channels``).
        num_layers, conv, knn, heads, pool, fuse, dropout, ffn_ratio: as in
            :class:`~graphfuse.models.GraphFusionModel`.
        temperature (float, optional): initial softmax temperature. (default: :obj:`0.07`)
        rerank (bool, optional): add the joint re-ranker. (default: :obj:`True`)
        rerank_conv (str, optional): the conv of the re-ranker's own fusion blocks;
            ``None`` shares the dual encoder's. Matching a query's parts to a candidate's needs
            attention whose ranking of sources depends on the destination (dot-product, as in
            ``"hgt"``): GAT's additive scores rank all sources the same for every destination,
            and GCN averages. (default: :obj:`"hgt"`)
        rerank_negatives (int, optional): hard negatives per query (and per gallery item) for
            the re-ranker's loss. (default: :obj:`3`)
        encoders (NodeEncoders, optional): the input encoders, as in
            :class:`~graphfuse.models.GraphFusionModel`; the re-ranker shares them.
            (default: :meth:`NodeEncoders.from_schema <graphfuse.nn.NodeEncoders.from_schema>`)

    Shapes:
        - **input:** a batch of samples holding both sides (sample :math:`i`'s sides match)
        - **output:** ``{"query": (B, D), "gallery": (B, D), "logit_scale": (), "rerank_loss": ()}``
    """

    task_name = "retrieval"

    @renamed(hidden="hidden_channels")
    def __init__(self, schema: GraphSchema | GraphBuilder, query: Sequence[str] = ("text",),
                 gallery: Sequence[str] = ("image",), hidden_channels: int = 64, embed_dim: int | None = None,
                 num_layers: int = 2, conv: str = "gat", knn: int | None = None, heads: int = 4, pool: str = "mean",
                 fuse: str = "attention", dropout: float = 0.1, ffn_ratio: float = 2.0, temperature: float = 0.07,
                 rerank: bool = True, rerank_conv: str | None = "hgt", rerank_negatives: int = 3,
                 encoders: NodeEncoders | None = None, **block_kwargs: Any) -> None:
        super().__init__()
        check_layers("GraphRetrievalModel", hidden_channels, num_layers, heads, dropout, ffn_ratio,
                     split_heads=conv in ATTENTION_CONVS or (bool(rerank) and rerank_conv in ATTENTION_CONVS))
        if embed_dim is not None:
            check_int(embed_dim, "GraphRetrievalModel 'embed_dim'")
        schema = as_schema(schema, "GraphRetrievalModel")
        self.query_types = _side_types(schema, query, "query")
        self.gallery_types = _side_types(schema, gallery, "gallery")
        check_sides("GraphRetrievalModel", self.query_types, self.gallery_types)
        if fuse == "virtual":
            raise ValueError("GraphRetrievalModel encodes each side on its own node types, which hold no virtual "
                             "nodes; use fuse='attention', 'gate' or 'concat'")
        if rerank_negatives < 1:
            raise ValueError(f"GraphRetrievalModel 'rerank_negatives' must be >= 1, got {rerank_negatives!r}")
        used = list(self.query_types + self.gallery_types)
        self.backbone = GraphBackbone(schema, hidden_channels, num_layers, conv, knn, heads, ffn_ratio, dropout,
                                      node_types=used, encoders=encoders, **block_kwargs)
        self.readout = Readout(hidden_channels, used, pool=pool, fuse=fuse)
        self.projection = ProjectionHead(self.readout.out_channels, embed_dim or hidden_channels)
        self.temperature = LearnableTemperature(temperature)
        self.rerank_negatives = rerank_negatives
        self.reranks = rerank
        self.rerank_conv = rerank_conv if rerank else None
        if rerank:
            self.pair_backbone = None if rerank_conv is None else GraphBackbone(
                schema, hidden_channels, num_layers, rerank_conv, None, heads, ffn_ratio, dropout, node_types=used,
                encoders=self.backbone.encoders, **block_kwargs)
            self.pair_readout = Readout(hidden_channels, used, pool=pool, fuse=fuse)
            self.pair_score = torch.nn.Sequential(torch.nn.Linear(self.pair_readout.out_channels, hidden_channels),
                                                  torch.nn.GELU(), torch.nn.Linear(hidden_channels, 1))

    @property
    def needs_node_sets(self) -> bool:
        """Training batches must carry their pair graphs (``batch.pair_graphs``, a
        :class:`~graphfuse.data.PairGraphs` over the batch's featurised samples) for the re-ranker."""
        return self.reranks

    def side_types(self, side: str) -> tuple[str, ...]:
        return pick_side(side, self.query_types, self.gallery_types)

    def encode(self, batch, side: str = "query") -> Tensor:
        """Unit embeddings ``[B, D]`` of one side of each sample (encoded on that side's subgraph)."""
        batch, types = as_batch(batch), self.side_types(side)
        lacking = _samples_without(batch, types)
        if lacking:
            raise ValueError(f"Samples {lacking[:8]} have no nodes of the {side} side {list(types)}; every retrieval "
                             f"sample needs both sides")
        h_dict, batch_dict, num_samples = self.backbone(batch, types)
        return self.projection(self.readout(h_dict, batch_dict, num_samples))

    def forward(self, batch) -> dict[str, Tensor | None]:
        batch = as_batch(batch)
        query, gallery = self.encode(batch, "query"), self.encode(batch, "gallery")
        output: dict[str, Tensor | None] = {"query": query, "gallery": gallery, "logit_scale": self.temperature()}
        if self.reranks and self.training:
            output["rerank_loss"] = self._rerank_loss(batch, query, gallery)
        return output

    # Re-ranking ---------------------------------------------------------------------------------
    def pair_scores(self, pair_batch) -> Tensor:
        """Joint scores ``[P]`` of a batch of pair graphs (from :class:`~graphfuse.data.PairGraphs`):
        each one query's query-side nodes and one candidate's gallery-side nodes, with the builder's
        edges between them."""
        if not self.reranks:
            raise RuntimeError("This GraphRetrievalModel was built with rerank=False; it has no re-ranker")
        backbone = self.backbone if self.pair_backbone is None else self.pair_backbone
        h_dict, batch_dict, num_samples = backbone(as_batch(pair_batch), self.query_types + self.gallery_types)
        return self.pair_score(self.pair_readout(h_dict, batch_dict, num_samples)).squeeze(-1)

    def _pair_batch(self, pair_graphs: PairGraphs, pairs: Tensor):
        return pair_graphs(pairs, self.query_types, self.gallery_types).to(self.temperature.log_scale.device)

    def _rerank_loss(self, batch, query: Tensor, gallery: Tensor) -> Tensor | None:
        pair_graphs = getattr(batch, "pair_graphs", None)
        if pair_graphs is None:
            raise ValueError("The re-ranker trains on batches that carry their pair graphs: set batch.pair_graphs = "
                             "graphfuse.data.PairGraphs(builder, batch.node_sets) on batches from "
                             "graphfuse.train.GraphCollate(builder, keep_samples=True) (the Trainer does both), or "
                             "build the model with rerank=False")
        size = query.size(0)
        k = min(self.rerank_negatives, size - 1)
        if k < 1:
            return None
        similarity = (query @ gallery.T).detach().float()
        similarity.fill_diagonal_(float("-inf"))
        hardest_gallery = similarity.topk(k, dim=1).indices          # [B, k] per query
        hardest_query = similarity.T.topk(k, dim=1).indices          # [B, k] per gallery item
        own = torch.arange(size, device=similarity.device)
        pairs = torch.cat([torch.stack([own, own], 1),
                           torch.stack([own.repeat_interleave(k), hardest_gallery.reshape(-1)], 1),
                           torch.stack([hardest_query.reshape(-1), own.repeat_interleave(k)], 1)])
        scores = self.pair_scores(self._pair_batch(pair_graphs, pairs.cpu()))
        positive = scores[:size, None]
        per_query = torch.cat([positive, scores[size:size * (k + 1)].view(size, k)], 1)
        per_gallery = torch.cat([positive, scores[size * (k + 1):].view(size, k)], 1)
        target = torch.zeros(size, dtype=torch.long, device=scores.device)
        cross_entropy = torch.nn.functional.cross_entropy
        return (cross_entropy(per_query.float(), target) + cross_entropy(per_gallery.float(), target)) / 2

    @torch.no_grad()
    def rerank(self, similarity: Tensor, pair_graphs: PairGraphs, k: int = 10, reverse: bool = False,
               pair_batch_size: int = 256) -> Tensor:
        """``similarity`` with each row's top-``k`` entries replaced by their re-ranked logits
        (``logit_scale * similarity + pair score``), lifted above every other entry: a ranking of
        the result reorders the top-k by the re-ranker and keeps the rest in dual-encoder order.

        Args:
            similarity (Tensor): ``[Q, G]`` dual-encoder scores (``reverse=True``: ``[G, Q]``,
                rows are gallery items searching the queries).
            pair_graphs (PairGraphs): the featurised query and gallery samples with their builder,
                ``PairGraphs(builder, query_sets, gallery_sets)``.
            k (int, optional): candidates re-ranked per row. (default: :obj:`10`)
        """
        if not self.reranks:
            raise RuntimeError("This GraphRetrievalModel was built with rerank=False; it has no re-ranker")
        rows, cols = similarity.shape
        k = min(k, cols)
        top = similarity.topk(k, dim=1).indices
        row = torch.arange(rows, device=similarity.device).repeat_interleave(k)
        pairs = torch.stack([top.reshape(-1), row] if reverse else [row, top.reshape(-1)], 1).cpu()
        training = self.training
        self.eval()
        scores = torch.cat([self.pair_scores(self._pair_batch(pair_graphs, chunk)).float()
                            for chunk in pairs.split(pair_batch_size)]).to(similarity.device)
        self.train(training)
        reranked = similarity.float().clone()
        scale = self.temperature().float().to(similarity.device)
        scores = scores + scale * reranked[row, top.reshape(-1)]
        lift = reranked.max() - scores.min() + 1  # re-ranked scores go above all dual scores
        reranked[row, top.reshape(-1)] = scores + lift
        return reranked

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(query={list(self.query_types)}, gallery={list(self.gallery_types)}, "
                f"{self.backbone.fusion!r}, {self.readout!r}, rerank={self.reranks}"
                f"{'' if self.rerank_conv is None else f', rerank_conv={self.rerank_conv!r}'})")
