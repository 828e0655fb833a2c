"""The graph fusion trunk every graph model shares: per-node-type encoders, then fusion blocks,
over the whole graph of a batch or over the subgraph of some node types."""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.checks import check_int, check_layers
from graphfuse.data import GraphBuilder, GraphSchema
from graphfuse.data.layout import batch_layout
from graphfuse.deprecation import renamed
from graphfuse.nn import FlatGraph, FusionBlock, FusionEncoder, NodeEncoders

#: The convs that split ``hidden_channels`` over attention ``heads``.
ATTENTION_CONVS = ("gat", "hgt")


def as_batch(data: HeteroData | Batch) -> Batch:
    """A batch of one for a single graph (what :meth:`GraphBuilder.build` gives)."""
    if isinstance(data, Batch):
        return data
    if isinstance(data, HeteroData):
        return Batch.from_data_list([data])
    raise TypeError(f"A graph model takes a PyG batch (GraphBuilder.collate) or one graph (GraphBuilder.build), got "
                    f"{type(data).__name__}")


def as_schema(schema: GraphSchema | GraphBuilder, owner: str) -> GraphSchema:
    """The schema a model is built from: given, or derived from the builder of the data."""
    if isinstance(schema, GraphBuilder):
        return schema.schema()
    if isinstance(schema, GraphSchema):
        return schema
    raise TypeError(f"{owner} is built from the GraphSchema of its data (builder.schema()) or the GraphBuilder "
                    f"itself, got {type(schema).__name__}")


def _check_block_options(options: Mapping[str, Any]) -> None:
    """Refuses options that neither :class:`~graphfuse.nn.FusionEncoder` nor its blocks take (a typo reaches
    here from :func:`~graphfuse.models.create_model`), with the closest known name."""
    passed_on = ({*inspect.signature(FusionBlock).parameters, *inspect.signature(FusionEncoder).parameters}
                 - {"channels", "metadata", "block_kwargs"})
    unknown = sorted(set(options) - passed_on)
    if unknown:
        known = sorted(passed_on | set(inspect.signature(GraphBackbone).parameters) - {"schema", "block_kwargs"})
        guesses = {name: difflib.get_close_matches(name, known, n=1) for name in unknown}
        hints = "; ".join(f"{name!r}" + (f" (did you mean {guess[0]!r}?)" if guess else "")
                          for name, guess in guesses.items())
        raise TypeError(f"A graph model got unknown options: {hints}. Its fusion takes {known}, besides the "
                        f"model's own (task, num_classes, pool, ...)")


class GraphBackbone(torch.nn.Module):
    """:class:`~graphfuse.nn.NodeEncoders` then a :class:`~graphfuse.nn.FusionEncoder`.

    Args:
        schema (GraphSchema or GraphBuilder): the node types, relations and input sizes of the
            data (``builder.schema()``; a builder stands for its schema).
        hidden_channels (int): features per node.
        num_layers, conv, knn, heads, ffn_ratio, dropout: see :class:`~graphfuse.nn.FusionEncoder`.
        node_types (Sequence[str], optional): the node types the model reads (default: all of
            the schema's); the others, and their relations, get no parameters and are ignored.
        encoders (NodeEncoders, optional): input encoders to share with another backbone
            (default: new ones for ``node_types``).
        unimodal_layers (int, optional): how many of the ``num_layers`` blocks, the first ones,
            pass messages over the intra-modal relations alone: each modality builds its own view
            before it meets the others (late-then-joint message passing). (default: :obj:`0`)
        knn_update (str, optional): with ``knn``, when the k-NN edges are chosen: ``"block"``,
            before every fusion block, or ``"forward"``, once from the fusion's input and shared by
            its blocks (cheaper; a different model, see :class:`~graphfuse.nn.FusionEncoder`).
            (default: :obj:`"block"`)
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, schema: GraphSchema | GraphBuilder, hidden_channels: int = 64, num_layers: int = 2,
                 conv: str = "gat", knn: int | None = None, heads: int = 4, ffn_ratio: float = 2.0,
                 dropout: float = 0.1, node_types: Sequence[str] | None = None, encoders: NodeEncoders | None = None,
                 unimodal_layers: int = 0, knn_update: str = "block", **block_kwargs: Any) -> None:
        super().__init__()
        check_layers("GraphBackbone", hidden_channels, num_layers, heads, dropout, ffn_ratio,
                     split_heads=conv in ATTENTION_CONVS)
        _check_block_options(block_kwargs)
        schema = as_schema(schema, "GraphBackbone")
        # What batches of its data hold (node types it does not read included): anything else in a batch
        # comes from another builder, and ignoring it would fuse a part of the data silently.
        self.data_types = (tuple(schema.node_types), tuple(schema.edge_types))
        self.node_types = list(schema.node_types if node_types is None else node_types)
        unknown = [t for t in self.node_types if t not in schema.node_types]
        if unknown:
            raise ValueError(f"node types {unknown} are not among the schema's {schema.node_types}")
        if encoders is None:
            encoders = NodeEncoders.from_schema(schema, hidden_channels)
        missing = [t for t in self.node_types if t not in encoders]
        if missing:
            raise ValueError(f"the shared 'encoders' have no encoder for node types {missing}")
        self.encoders = NodeEncoders({t: encoders[t] for t in self.node_types})
        edge_types = schema.edge_types
        metadata = (self.node_types, [e for e in edge_types if e[0] in self.node_types and e[2] in self.node_types])
        check_int(unimodal_layers, "GraphBackbone 'unimodal_layers'", minimum=0)
        if unimodal_layers >= num_layers:
            raise ValueError(f"GraphBackbone 'unimodal_layers' ({unimodal_layers}) must leave at least one of the "
                             f"num_layers={num_layers} blocks to fuse the modalities; lower it or raise num_layers")
        self.fusion = FusionEncoder(hidden_channels, metadata, num_layers - unimodal_layers, conv, knn=knn, heads=heads,
                                    knn_update=knn_update, ffn_ratio=ffn_ratio, dropout=dropout, **block_kwargs)
        intra = (self.node_types, [e for e in metadata[1] if e[0] == e[2]])
        self.unimodal = FusionEncoder(hidden_channels, intra, unimodal_layers, conv, heads=heads, ffn_ratio=ffn_ratio,
                                      dropout=dropout, **block_kwargs) if unimodal_layers else None

    def forward(self, batch: Batch, node_types: Collection[str] | None = None, return_unimodal: bool = False
                ) -> tuple[dict[str, Tensor], Mapping[str, Tensor], int] | tuple[
                    dict[str, Tensor], Mapping[str, Tensor], int, dict[str, Tensor]]:
        """Fused ``h_dict`` (with ``batch_dict`` and the number of samples) of the whole graph, or
        of the subgraph of ``node_types``: their nodes and the relations among them only. With
        ``return_unimodal``, also each node's state after the per-modality blocks (the encoders'
        output without any), which no other modality has reached."""
        self._check_types(batch)
        h_dict = self.encoders(batch, node_types)
        if all(h.size(0) == 0 for h in h_dict.values()):  # also a batch whose node types are all empty
            wanted = self.node_types if node_types is None else list(node_types)
            raise ValueError(f"The batch has no nodes of the node types {wanted}; its node types are "
                             f"{batch.node_types}")
        keep = set(h_dict)
        edges = {e: batch[e].edge_index for e in self.fusion.schema.edge_types
                 if e[0] in keep and e[2] in keep and e in batch.edge_types}
        batch_dict = {t: batch[t].batch for t in h_dict}
        sizes = {t: h.size(0) for t, h in h_dict.items()}
        layout = batch_layout(batch)  # a collated batch's: the graphs read no tensor values
        graph = FlatGraph.from_dicts(self.fusion.schema, sizes, edges, batch_dict, batch.num_graphs, layout=layout)
        x = graph.flatten(h_dict)
        if self.unimodal is not None:
            intra = self.unimodal.schema
            x = self.unimodal(x, FlatGraph.from_dicts(intra, sizes, {e: edges[e] for e in intra.edge_types
                                                                     if e in edges}, batch_dict, batch.num_graphs,
                                                      layout=layout))
        fused = graph.unflatten(self.fusion(x, graph))
        fused = {t: fused[t] for t in h_dict}
        if not return_unimodal:
            return fused, batch_dict, batch.num_graphs
        unimodal = graph.unflatten(x)
        return fused, batch_dict, batch.num_graphs, {t: unimodal[t] for t in h_dict}

    def _check_types(self, batch: Batch) -> None:
        node_types, edge_types = self.data_types
        unknown = ([t for t in batch.node_types if t not in node_types]
                   + [e for e in batch.edge_types if e not in edge_types])
        if unknown:
            raise ValueError(f"The batch has node or edge types {unknown} that the model was not built for (node types "
                             f"{list(node_types)}, relations {list(edge_types)}): make the batch with the builder the "
                             f"model was created from, or create a model for this builder")
