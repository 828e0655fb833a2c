"""Graph fusion for per-sample prediction: classification (multi-class, multi-label) and regression."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_choice, check_layers, check_outputs, check_probability
from graphfuse.data import GraphBuilder, GraphSchema
from graphfuse.deprecation import renamed
from graphfuse.models.backbone import ATTENTION_CONVS, GraphBackbone, as_batch, as_schema
from graphfuse.nn import ClassificationHead, MultimodalOutput, NodeEncoders, Readout, RegressionHead, UnimodalHeads

TASKS = ("classification", "multilabel", "regression")
ENSEMBLES = ("gated", True, False)
#: What the Trainer may balance a model's modalities with (see :class:`~graphfuse.train.GradientModulation`).
MODULATIONS = ("none", "ogm", "ogm-ge")


class GraphFusionModel(torch.nn.Module):
    r"""Encoders -> per-modality blocks -> joint fusion blocks over the sample graph -> readout ->
    head, trained with every modality kept alive.

    .. math::
        \mathbf{u} = \mathrm{Blocks}^{L_u}_{\text{intra}}(\mathrm{Enc}(\mathcal{G})), \qquad
        \mathbf{h} = \mathrm{Readout}\big(\mathrm{Blocks}^{L - L_u}(\mathbf{u}, \mathcal{G})\big), \qquad
        \hat{\mathbf{y}} = \mathrm{Head}(\mathbf{h}) + \sum_{m \text{ present}}
        \log \mathrm{softmax}\big(\mathrm{Head}_m(\bar{\mathbf{u}}_m)\big)

    What keeps each modality alive, each measured on its own by ``python -m graphfuse.bench
    ablation`` (the README has the table) and on by default where it helped there:

    * **late-then-joint blocks** (``unimodal_layers``): the first blocks pass messages within each
      modality only, so every modality builds its own view before the cross-modal edges (a
      complete image <-> audio relation sends a patch a hundred audio messages beside its four
      grid neighbours) can drown it;
    * **modality context** (``modality_context``, off by default): a gated per-modality virtual
      node in every block (:class:`~graphfuse.nn.ModalityContext`), so a modality's view spans all
      its nodes as a per-modality transformer's does, not a few neighbours; beside the other
      techniques it cost ``graph-gat`` 0.7 to 4.5 points on each benchmark task and left
      ``graph-hgt`` level on average;
    * **attention pooling and a bilinear readout** (``pool``, ``fuse``): each modality keeps its
      own slot in the fused vector (one modality's evidence is not averaged into another's), and
      the pairwise products let the head compare modalities;
    * **unimodal heads** (``unimodal_weight``): a head per modality on its pooled per-modality
      states, each trained with the weight of a unimodal model's loss beside the fused head, so
      the modality learned fastest cannot starve the others of gradient; with
      ``unimodal_ensemble`` their log-probabilities join the prediction (a product of experts, as
      late fusion forms), which carries a sample whose other modalities are missing; by default
      only the heads that beat a constant prediction on the validation data vote, so a modality
      that cannot tell the classes apart alone adds no noise;
    * **modality drop-out** (``modality_dropout``): the Trainer drops each modality of a training
      sample at random, so the model has seen every modality missing; with gated votes a sample
      always keeps a modality whose head votes, so where none predicts the label alone (the label
      compares the modalities) no sample is left with a label nothing in it predicts;
    * **gradient modulation** (``gradient_modulation="ogm-ge"``, off by default): OGM-GE slows
      the encoders of the modality that leads (:class:`~graphfuse.train.GradientModulation`).

    Args:
        schema (GraphSchema or GraphBuilder): the node types, relations and input sizes of the data
            (``builder.schema()``; a builder stands for its schema).
        task (str, optional): ``"classification"``, ``"multilabel"`` or ``"regression"``.
            (default: :obj:`"classification"`)
        num_classes (int, optional): classes or labels (classification tasks).
        out_channels (int, optional): targets per sample (regression). (default: :obj:`1`)
        hidden_channels (int, optional): features per node. (default: :obj:`64`)
        num_layers (int, optional): fusion blocks in all, per-modality ones included.
            (default: :obj:`2`)
        conv (str, optional): ``"gcn"``, ``"gat"``, ``"hgt"``, ``"gated"`` or a registered conv.
            (default: :obj:`"gat"`)
        knn (int, optional): dynamic k-NN cross-modal edges (see :class:`~graphfuse.nn.FusionEncoder`),
            chosen before every fusion block; ``knn_update="forward"`` (a
            :class:`~graphfuse.models.GraphBackbone` argument) chooses them once from the fusion's
            input instead.
        heads (int, optional): attention heads. (default: :obj:`4`)
        pool (str, optional): per-node-type pooling of the readout and of the unimodal heads,
            ``"mean"``, ``"max"``, ``"sum"`` or ``"attention"``. (default: :obj:`"attention"`)
        fuse (str, optional): fusion across node types, ``"attention"``, ``"gate"``, ``"concat"``,
            ``"bilinear"`` or ``"virtual"`` (see :class:`~graphfuse.nn.TypeFusion`).
            (default: :obj:`"bilinear"`)
        dropout (float, optional): in the fusion blocks and the heads. (default: :obj:`0.1`)
        ffn_ratio (float, optional): feed-forward size of the fusion blocks. (default: :obj:`2`)
        head_hidden_channels (int, optional): a two-layer head of this hidden size. (default: :obj:`None`)
        unimodal_layers (int, optional): how many of the ``num_layers`` blocks, the first, pass
            messages within each modality only; ``None`` for ``num_layers // 2``.
            (default: :obj:`None`)
        modality_context (bool, optional): a :class:`~graphfuse.nn.ModalityContext` in every block.
            (default: :obj:`False`)
        unimodal_weight (float, optional): weight of each unimodal head's loss beside the fused
            head's (:class:`~graphfuse.nn.UnimodalHeads`, one per modality on its states after the
            per-modality blocks); ``0`` builds none. (default: :obj:`1.0`)
        unimodal_ensemble (bool or str, optional): add the present modalities' unimodal
            predictions to the fused one (see :meth:`~graphfuse.nn.UnimodalHeads.ensemble`):
            ``"gated"`` those of the heads that beat a constant prediction on the validation data,
            which the Trainer checks after every validation pass (every head votes until the
            first, and always when :meth:`~graphfuse.train.Trainer.fit` gets no validation data;
            see :meth:`~graphfuse.nn.UnimodalHeads.gate_votes`); :obj:`True` every head's;
            :obj:`False` none. (default: :obj:`"gated"`)
        modality_dropout (float, optional): probability that the Trainer drops each modality of a
            training sample, never all, nor (with gated votes) every modality whose head votes
            (see :class:`~graphfuse.train.ModalityDropout`).
            (default: :obj:`0.15`)
        gradient_modulation (str, optional): what the Trainer balances gradients with:
            ``"ogm-ge"``, ``"ogm"`` or ``"none"``; needs unimodal heads and multi-class labels.
            (default: :obj:`"none"`)
        encoders (NodeEncoders, optional): the input encoders, one per node type, each called as
            ``encoder(x, pos, time)`` (with ``batch=`` too when it sets ``needs_batch``) and
            returning :math:`(N, C)` states of ``hidden_channels`` features; to swap one, start from
            ``NodeEncoders.from_schema(schema, hidden_channels)`` and replace it. Such a model is not
            built from plain settings, so a :class:`~graphfuse.Pipeline` saves it only through a
            registered model factory that builds them (:func:`~graphfuse.models.register_model`).
            (default: :meth:`NodeEncoders.from_schema <graphfuse.nn.NodeEncoders.from_schema>`)
        **block_kwargs: more :class:`~graphfuse.nn.FusionBlock` arguments (``norm_first``,
            ``conv_kwargs``, ...).

    Shapes:
        - **input:** a PyG batch from :meth:`GraphBuilder.collate` (or one graph)
        - **output:** :math:`(B, K)` logits or :math:`(B, C_{out})` predictions; while training
          with unimodal heads, a :class:`~graphfuse.nn.MultimodalOutput` that holds them too
    """

    @renamed(hidden="hidden_channels", head_hidden="head_hidden_channels")
    def __init__(self, schema: GraphSchema | GraphBuilder, task: str = "classification", num_classes: int | None = None,
                 out_channels: int = 1, hidden_channels: int = 64, num_layers: int = 2, conv: str = "gat",
                 knn: int | None = None, heads: int = 4, pool: str = "attention", fuse: str = "bilinear",
                 dropout: float = 0.1, ffn_ratio: float = 2.0, head_hidden_channels: int | None = None,
                 unimodal_layers: int | None = None, modality_context: bool = False, unimodal_weight: float = 1.0,
                 unimodal_ensemble: bool | str = "gated", modality_dropout: float = 0.15,
                 gradient_modulation: str = "none", encoders: NodeEncoders | None = None,
                 **block_kwargs: Any) -> None:
        super().__init__()
        check_choice(task, TASKS, "GraphFusionModel 'task'")
        check_layers("GraphFusionModel", hidden_channels, num_layers, heads, dropout, ffn_ratio,
                     split_heads=conv in ATTENTION_CONVS)
        check_outputs("GraphFusionModel", task, num_classes, out_channels, head_hidden_channels)
        check_choice(gradient_modulation, MODULATIONS, "GraphFusionModel 'gradient_modulation'")
        if unimodal_ensemble not in ENSEMBLES:
            raise ValueError(f"GraphFusionModel 'unimodal_ensemble' must be one of {ENSEMBLES}, got "
                             f"{unimodal_ensemble!r}")
        if isinstance(unimodal_weight, bool) or not isinstance(unimodal_weight, (int, float)) or unimodal_weight < 0:
            raise ValueError(f"GraphFusionModel 'unimodal_weight' must be a number >= 0, got {unimodal_weight!r}")
        if gradient_modulation != "none" and not (unimodal_weight and task == "classification"):
            raise ValueError(f"GraphFusionModel gradient_modulation={gradient_modulation!r} scores each modality by "
                             f"its unimodal head on class labels: it needs unimodal_weight > 0 and "
                             f"task='classification' (got unimodal_weight={unimodal_weight!r}, task={task!r})")
        schema = as_schema(schema, "GraphFusionModel")
        self.task_name = task
        self.unimodal_weight = float(unimodal_weight)
        self.modality_dropout = check_probability(modality_dropout, "GraphFusionModel 'modality_dropout'")
        self.gradient_modulation = gradient_modulation
        self.unimodal_ensemble = bool(unimodal_ensemble)
        self.backbone = GraphBackbone(
            schema, hidden_channels, num_layers, conv, knn, heads, ffn_ratio, dropout,
            unimodal_layers=num_layers // 2 if unimodal_layers is None else unimodal_layers,
            encoders=encoders, modality_context=modality_context, **block_kwargs)
        self.readout = Readout(hidden_channels, schema.node_types, pool=pool, fuse=fuse)
        if task == "regression":
            self.head = RegressionHead(self.readout.out_channels, out_channels, head_hidden_channels, dropout)
        else:
            self.head = ClassificationHead(self.readout.out_channels, num_classes, head_hidden_channels, dropout,
                                           multilabel=task == "multilabel")
        self.unimodal = UnimodalHeads(hidden_channels, schema.modalities, self.head.out_channels, task, dropout,
                                      pool, gated=unimodal_ensemble == "gated") if unimodal_weight else None

    def modality_parameters(self) -> dict[str, list[torch.nn.Parameter]]:
        """Each modality's own parameters, its input encoder's, which gradient modulation scales."""
        return {t: list(self.backbone.encoders[t].parameters()) for t in self.backbone.encoders}

    def embed(self, batch, node_types: Collection[str] | None = None) -> Tensor:
        """The fused vector of each sample ``[B, readout.out_channels]``, from the whole graph or the
        subgraph of ``node_types``."""
        h_dict, batch_dict, num_samples = self.backbone(as_batch(batch), node_types)
        return self.readout(h_dict, batch_dict, num_samples)

    def forward(self, batch) -> Tensor | MultimodalOutput:
        """The prediction ``[B, K]``; while training with unimodal heads, a
        :class:`~graphfuse.nn.MultimodalOutput` that also holds each modality's own."""
        h_dict, batch_dict, num_samples, unimodal_states = self.backbone(as_batch(batch), return_unimodal=True)
        output = self.head(self.readout(h_dict, batch_dict, num_samples))
        if self.unimodal is None or not (self.training or self.unimodal_ensemble):
            return output
        unimodal, present = self.unimodal(unimodal_states, batch_dict, num_samples)
        if self.unimodal_ensemble:
            output = self.unimodal.ensemble(output, unimodal, present)
        return MultimodalOutput(output, unimodal, present, tuple(self.unimodal.node_types)) if self.training \
            else output

    def __repr__(self) -> str:
        fusion, unimodal = self.backbone.fusion, self.backbone.unimodal
        stages = f"{unimodal!r} (per modality), {fusion!r}" if unimodal is not None else repr(fusion)
        return (f"{self.__class__.__name__}(task={self.task_name!r}, {stages}, {self.readout!r}, "
                f"{self.head!r})")
