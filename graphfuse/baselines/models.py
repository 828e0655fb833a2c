"""Classic (non-graph) fusion models, on the same inputs and input encoders as the graph models:
:class:`BaselineFusionModel` (classification and regression) and :class:`BaselineRetrievalModel`
(a dual encoder for retrieval), registered by :mod:`graphfuse.baselines.registry`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from graphfuse.baselines.dense import dense_modalities, masked_mean
from graphfuse.baselines.encoder import ModalityEncoder
from graphfuse.baselines.mult import CrossModalTransformer
from graphfuse.baselines.transformer import TransformerFusion
from graphfuse.baselines.vectors import EarlyFusion, LateFusion, LowRankTensorFusion, TensorFusion
from graphfuse.checks import check_choice, check_int, check_layers, check_outputs
from graphfuse.data import GraphBuilder, GraphSchema
from graphfuse.deprecation import renamed
from graphfuse.models.backbone import as_batch, as_schema
from graphfuse.models.retrieval import SIDES, check_sides, pick_side
from graphfuse.nn import ClassificationHead, NodeEncoders, ProjectionHead, RegressionHead
from graphfuse.nn.contrastive import LearnableTemperature

__all__ = ["BaselineFusionModel", "BaselineRetrievalModel"]

TASKS = ("classification", "multilabel", "regression")
FUSIONS = ("early", "late", "tensor", "lowrank", "transformer", "mult")
VECTOR_FUSIONS = ("early", "late", "tensor", "lowrank")  # a ModalityEncoder per modality, then fusion of vectors
RETRIEVAL_FUSIONS = ("early", "transformer")


def _modalities(schema: GraphSchema, node_types: Sequence[str] | str | None, owner: str,
                name: str = "node_types") -> list[str]:
    """``node_types`` checked against the schema's modalities (default: all of them)."""
    if node_types is None:
        return list(schema.modalities)
    types = [node_types] if isinstance(node_types, str) else list(node_types)
    unknown = [t for t in types if t not in schema.modalities]
    if not types or unknown or len(set(types)) != len(types):
        raise ValueError(f"{owner} '{name}' must name distinct modalities of the builder {list(schema.modalities)}, "
                         f"got {types}; pick from those (the builder's virtual nodes are no modality)")
    return types


def _encoders(schema: GraphSchema, hidden_channels: int, node_types: Sequence[str]) -> NodeEncoders:
    encoders = NodeEncoders.from_schema(schema, hidden_channels)
    return NodeEncoders({t: encoders[t] for t in node_types})


def _encode(encoders: NodeEncoders, batch, node_types: Sequence[str], owner: str
            ) -> tuple[dict[str, Tensor], dict[str, Tensor], int, Tensor]:
    """``h_dict`` and ``batch_dict`` of ``node_types``, the number of samples, and which
    (sample, node type) pairs have nodes ``[B, len(node_types)]``; raises for a batch without
    nodes of ``node_types`` and for samples with none of them."""
    h_dict = encoders(batch, node_types)
    if all(h.size(0) == 0 for h in h_dict.values()):  # also a batch without these node types at all
        raise ValueError(f"{owner}: the batch has no nodes of the node types {list(node_types)}; its node types are "
                         f"{batch.node_types}. Batch samples that hold at least one of them, or build the model "
                         f"with node_types among the batch's")
    num_samples = batch.num_graphs
    batch_dict = {t: batch[t].batch for t in h_dict}
    device = next(iter(h_dict.values())).device
    present = torch.stack([
        torch.zeros(num_samples, dtype=torch.bool, device=device).index_fill_(0, batch_dict[t].to(device), True)
        if t in batch_dict else torch.zeros(num_samples, dtype=torch.bool, device=device) for t in node_types], dim=1)
    # One device sync: a sample without any of the node types has nothing to fuse.
    lacking = (~present.any(dim=1)).nonzero().flatten().tolist()
    if lacking:
        raise ValueError(f"{owner}: samples {lacking[:8]} have no nodes of the node types {list(node_types)}; every "
                         f"sample needs at least one of them (drop those samples, or read more node types)")
    return h_dict, batch_dict, num_samples, present


def _modality_vectors(modality_encoders: Mapping[str, ModalityEncoder], h_dict: Mapping[str, Tensor],
                      batch_dict: Mapping[str, Tensor], num_samples: int) -> tuple[Tensor, Tensor]:
    """Each modality's :class:`ModalityEncoder` vector, stacked: ``z [B, M, C]``, ``present [B, M]``."""
    dense = dense_modalities(h_dict, batch_dict, num_samples)
    first = next(iter(h_dict.values()))
    z, present = [], []
    for node_type, encoder in modality_encoders.items():
        if node_type in dense:
            vector, has = encoder(*dense[node_type])
        else:  # the node type is absent from the whole batch
            vector = first.new_zeros(num_samples, encoder.channels)
            has = torch.zeros(num_samples, dtype=torch.bool, device=first.device)
        z.append(vector)
        present.append(has)
    dtype = z[0].dtype
    for vector in z[1:]:
        dtype = torch.promote_types(dtype, vector.dtype)
    return torch.stack([vector.to(dtype) for vector in z], dim=1), torch.stack(present, dim=1)


class BaselineFusionModel(torch.nn.Module):
    r"""A classic multimodal fusion model for classification or regression: the graph models'
    input encoders, then fusion without a graph, then a head.

    .. math::
        \mathbf{h} = \mathrm{Fusion}\big(\{\mathrm{Enc}_t(\mathbf{X}_t)\}_t\big), \qquad
        \hat{\mathbf{y}} = \mathrm{Head}(\mathbf{h})

    ``fusion`` picks the method (see :mod:`graphfuse.baselines`):

    * ``"early"``, ``"tensor"``, ``"lowrank"``: a :class:`~graphfuse.baselines.ModalityEncoder` per
      modality, then :class:`~graphfuse.baselines.EarlyFusion`, :class:`~graphfuse.baselines.TensorFusion` or
      :class:`~graphfuse.baselines.LowRankTensorFusion` (to ``hidden_channels`` features), then the head;
    * ``"late"``: a :class:`~graphfuse.baselines.ModalityEncoder` per modality, then
      :class:`~graphfuse.baselines.LateFusion` as the head: the per-modality predictions averaged (mean
      log-probabilities for classification), trained end-to-end on the average;
    * ``"transformer"``: :class:`~graphfuse.baselines.TransformerFusion` over all tokens, then the head;
    * ``"mult"``: :class:`~graphfuse.baselines.CrossModalTransformer`, then the head.

    A unimodal model reads one modality: ``node_types=("image",)`` with ``fusion="early"``.
    Samples may lack modalities, but each needs at least one of ``node_types``.

    Args:
        schema (GraphSchema or GraphBuilder): the node types and input sizes of the data
            (``builder.schema()``; a builder stands for its schema).
        task (str, optional): ``"classification"``, ``"multilabel"`` or ``"regression"``.
            (default: :obj:`"classification"`)
        num_classes (int, optional): classes or labels (classification tasks).
        out_channels (int, optional): targets per sample (regression). (default: :obj:`1`)
        hidden_channels (int, optional): features per token and per modality. (default: :obj:`64`)
        fusion (str, optional): ``"early"``, ``"late"``, ``"tensor"``, ``"lowrank"``,
            ``"transformer"`` or ``"mult"``. (default: :obj:`"early"`)
        node_types (Sequence[str], optional): the modalities read (default: all of the builder's).
        num_layers (int, optional): transformer layers (per modality; cross-modal layers per pair
            for ``"mult"``). (default: :obj:`1`)
        heads (int, optional): attention heads. (default: :obj:`4`)
        dropout (float, optional): in the transformers, the fusion MLPs and the head.
            (default: :obj:`0.1`)
        ffn_ratio (float, optional): feed-forward size of the transformers. (default: :obj:`2.0`)
        head_hidden_channels (int, optional): a two-layer head of this hidden size. (default: :obj:`None`)
        tensor_dim (int, optional): projection size per modality of ``"tensor"``. (default: :obj:`8`)
        rank (int, optional): rank of ``"lowrank"``. (default: :obj:`4`)

    Shapes:
        - **input:** a PyG batch from :meth:`GraphBuilder.collate` (or one graph)
        - **output:** :math:`(B, K)` logits (mean log-probabilities for ``"late"``
          classification) or :math:`(B, C_{out})` predictions
    """

    @renamed(hidden="hidden_channels", head_hidden="head_hidden_channels")
    def __init__(self, schema: GraphSchema | GraphBuilder, task: str = "classification", num_classes: int | None = None,
                 out_channels: int = 1, hidden_channels: int = 64, fusion: str = "early",
                 node_types: Sequence[str] | None = None, num_layers: int = 1, heads: int = 4, dropout: float = 0.1,
                 ffn_ratio: float = 2.0, head_hidden_channels: int | None = None, tensor_dim: int = 8,
                 rank: int = 4) -> None:
        super().__init__()
        check_choice(task, TASKS, "BaselineFusionModel 'task'")
        check_choice(fusion, FUSIONS, "BaselineFusionModel 'fusion'")
        check_layers("BaselineFusionModel", hidden_channels, num_layers, heads, dropout, ffn_ratio)
        check_outputs("BaselineFusionModel", task, num_classes, out_channels, head_hidden_channels)
        check_int(tensor_dim, "BaselineFusionModel 'tensor_dim'")
        check_int(rank, "BaselineFusionModel 'rank'")
        schema = as_schema(schema, "BaselineFusionModel")
        self.fusion_name, self.task_name = fusion, task
        self.node_types = _modalities(schema, node_types, "BaselineFusionModel")
        if fusion == "mult" and len(self.node_types) < 2:
            raise ValueError(f"BaselineFusionModel fusion='mult' attends across modalities and needs at least two "
                             f"node types, got {self.node_types}; use fusion='early' for one modality")
        num_types = len(self.node_types)
        self.encoders = _encoders(schema, hidden_channels, self.node_types)
        self.modality_encoders = None
        if fusion in VECTOR_FUSIONS:
            self.modality_encoders = torch.nn.ModuleDict({
                t: ModalityEncoder(hidden_channels, num_layers, heads, ffn_ratio, dropout) for t in self.node_types})
        self.fusion: torch.nn.Module | None = None
        if fusion == "early":
            self.fusion = EarlyFusion(hidden_channels, num_types, hidden_channels, hidden_channels, dropout)
        elif fusion == "tensor":
            self.fusion = TensorFusion(hidden_channels, num_types, tensor_dim, hidden_channels, hidden_channels,
                                       dropout)
        elif fusion == "lowrank":
            self.fusion = LowRankTensorFusion(hidden_channels, num_types, rank, hidden_channels)
        elif fusion == "transformer":
            self.fusion = TransformerFusion(hidden_channels, self.node_types, num_layers, heads, ffn_ratio, dropout)
        elif fusion == "mult":
            self.fusion = CrossModalTransformer(hidden_channels, self.node_types, num_layers, heads, ffn_ratio, dropout)
        self.out_channels = hidden_channels if fusion in VECTOR_FUSIONS else self.fusion.out_channels
        outputs = out_channels if task == "regression" else num_classes
        if fusion == "late":
            self.head = LateFusion(hidden_channels, num_types, outputs, task, head_hidden_channels, dropout)
        elif task == "regression":
            self.head = RegressionHead(self.out_channels, outputs, head_hidden_channels, dropout)
        else:
            self.head = ClassificationHead(self.out_channels, outputs, head_hidden_channels, dropout,
                                           multilabel=task == "multilabel")

    def _fuse(self, batch) -> tuple[Tensor, Tensor | None]:
        h_dict, batch_dict, num_samples, present = _encode(self.encoders, as_batch(batch), self.node_types,
                                                           self.__class__.__name__)
        if self.modality_encoders is None:
            return self.fusion(h_dict, batch_dict, num_samples), None
        z, present = _modality_vectors(self.modality_encoders, h_dict, batch_dict, num_samples)
        return z, present

    def embed(self, batch) -> Tensor:
        r"""The fused vector of each sample :math:`(B, \text{out\_channels})`: what the head reads.
        Late fusion fuses predictions, not vectors: its embedding is the mean of the present
        modalities' vectors."""
        out, present = self._fuse(batch)
        if present is None:
            return out
        if self.fusion is None:  # late
            return masked_mean(out, present)[0]
        return self.fusion(out, present)

    def forward(self, batch) -> Tensor:
        if self.fusion is None:  # late fusion: the head fuses
            return self.head(*self._fuse(batch))
        return self.head(self.embed(batch))

    def __repr__(self) -> str:
        fusion = self.head if self.fusion is None else self.fusion
        head = "" if self.fusion is None else f", {self.head!r}"
        return (f"{self.__class__.__name__}(task={self.task_name!r}, fusion={self.fusion_name!r}, "
                f"node_types={self.node_types}, {fusion!r}{head})")


class BaselineRetrievalModel(torch.nn.Module):
    r"""A classic dual encoder for cross-modal retrieval: each side (``query`` node types, e.g.
    text; ``gallery`` node types, e.g. image, or image + audio) is encoded from its own modalities
    only, by its own tower, and projected into a shared L2-normalised space; training minimises the
    symmetric InfoNCE loss with a learnable temperature (:class:`~graphfuse.train.RetrievalTask`).

    .. math::
        \mathbf{q} = \mathrm{Proj}_q\big(\mathrm{Fusion}_q(\{\mathrm{Enc}_t(\mathbf{X}_t)\}_{t \in Q})\big),
        \qquad
        \mathbf{g} = \mathrm{Proj}_g\big(\mathrm{Fusion}_g(\{\mathrm{Enc}_t(\mathbf{X}_t)\}_{t \in G})\big)

    ``fusion="early"``: a :class:`~graphfuse.baselines.ModalityEncoder` per node type and an
    :class:`~graphfuse.baselines.EarlyFusion` per side; ``fusion="transformer"``: a
    :class:`~graphfuse.baselines.TransformerFusion` per side over that side's tokens. Late, tensor and
    MulT fusion read all modalities of a sample jointly and have no dual-encoder form.

    Args:
        schema (GraphSchema or GraphBuilder): the node types and input sizes of the data
            (``builder.schema()``; a builder stands for its schema).
        fusion (str, optional): ``"early"`` or ``"transformer"``. (default: :obj:`"early"`)
        query (Sequence[str], optional): node types of the query side. (default: :obj:`("text",)`)
        gallery (Sequence[str], optional): node types of the gallery side.
            (default: :obj:`("image",)`)
        hidden_channels (int, optional): features per token. (default: :obj:`64`)
        embed_dim (int, optional): size of the shared space (default: ``hidden_channels``).
        num_layers, heads, dropout, ffn_ratio: as in :class:`BaselineFusionModel`.
        temperature (float, optional): initial softmax temperature. (default: :obj:`0.07`)

    Shapes:
        - **input:** a batch of samples holding both sides (sample :math:`i`'s sides match)
        - **output:** ``{"query": (B, D), "gallery": (B, D), "logit_scale": ()}``
    """

    task_name = "retrieval"

    @renamed(hidden="hidden_channels")
    def __init__(self, schema: GraphSchema | GraphBuilder, fusion: str = "early", query: Sequence[str] = ("text",),
                 gallery: Sequence[str] = ("image",), hidden_channels: int = 64, embed_dim: int | None = None,
                 num_layers: int = 1, heads: int = 4, dropout: float = 0.1, ffn_ratio: float = 2.0,
                 temperature: float = 0.07) -> None:
        super().__init__()
        if fusion not in RETRIEVAL_FUSIONS:
            reason = ("it fuses the predictions of all modalities of a sample" if fusion == "late" else
                      "it fuses all modalities of a sample jointly") if fusion in FUSIONS else "it is unknown"
            raise ValueError(f"BaselineRetrievalModel needs a dual encoder, which encodes the query and gallery "
                             f"sides apart; fusion={fusion!r} has no such form ({reason}). Use fusion='early' or "
                             f"'transformer' (create_model('early-fusion' or 'transformer-fusion', "
                             f"task='retrieval'))")
        check_layers("BaselineRetrievalModel", hidden_channels, num_layers, heads, dropout, ffn_ratio)
        if embed_dim is not None:
            check_int(embed_dim, "BaselineRetrievalModel 'embed_dim'")
        schema = as_schema(schema, "BaselineRetrievalModel")
        self.fusion_name = fusion
        self.query_types = tuple(_modalities(schema, query, "BaselineRetrievalModel", "query"))
        self.gallery_types = tuple(_modalities(schema, gallery, "BaselineRetrievalModel", "gallery"))
        check_sides("BaselineRetrievalModel", self.query_types, self.gallery_types)
        used = list(self.query_types + self.gallery_types)
        self.encoders = _encoders(schema, hidden_channels, used)
        self.modality_encoders = None
        if fusion == "early":
            self.modality_encoders = torch.nn.ModuleDict({
                t: ModalityEncoder(hidden_channels, num_layers, heads, ffn_ratio, dropout) for t in used})
            self.fusion = torch.nn.ModuleDict({side: EarlyFusion(hidden_channels, len(self.side_types(side)),
                                                                 hidden_channels, hidden_channels, dropout)
                                               for side in SIDES})
        else:
            self.fusion = torch.nn.ModuleDict({side: TransformerFusion(hidden_channels, self.side_types(side),
                                                                       num_layers, heads, ffn_ratio, dropout)
                                               for side in SIDES})
        self.projection = torch.nn.ModuleDict({side: ProjectionHead(hidden_channels, embed_dim or hidden_channels)
                                               for side in SIDES})
        self.temperature = LearnableTemperature(temperature)
        self.task_name = "retrieval"

    def side_types(self, side: str) -> tuple[str, ...]:
        return pick_side(side, self.query_types, self.gallery_types)

    def encode(self, batch, side: str = "query") -> Tensor:
        """Unit embeddings ``[B, D]`` of one side of each sample (from that side's node types)."""
        types = self.side_types(side)
        h_dict, batch_dict, num_samples, _ = _encode(self.encoders, as_batch(batch), types,
                                                     f"{self.__class__.__name__} ({side} side)")
        if self.modality_encoders is None:
            fused = self.fusion[side](h_dict, batch_dict, num_samples)
        else:
            encoders = {t: self.modality_encoders[t] for t in types}
            fused = self.fusion[side](*_modality_vectors(encoders, h_dict, batch_dict, num_samples))
        return self.projection[side](fused)

    def forward(self, batch) -> dict[str, Tensor]:
        batch = as_batch(batch)
        return {"query": self.encode(batch, "query"), "gallery": self.encode(batch, "gallery"),
                "logit_scale": self.temperature()}

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(fusion={self.fusion_name!r}, query={list(self.query_types)}, "
                f"gallery={list(self.gallery_types)}, {self.projection['query']!r})")
