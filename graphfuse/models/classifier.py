"""Graph fusion for per-sample prediction: classification (multi-class, multi-label) and regression."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_choice
from graphfuse.graph import GraphBuilder
from graphfuse.models.backbone import GraphBackbone, as_batch
from graphfuse.nn import ClassificationHead, Readout, RegressionHead
from graphfuse.train.tasks import ClassificationTask, RegressionTask

TASKS = ("classification", "multilabel", "regression")


class GraphFusionModel(torch.nn.Module):
    r"""Encoders -> fusion blocks over the sample graph -> readout -> head.

    .. math::
        \mathbf{h} = \mathrm{Readout}\big(\mathrm{Fusion}^{L}(\mathrm{Enc}(\mathcal{G}))\big),
        \qquad \hat{\mathbf{y}} = \mathrm{Head}(\mathbf{h})

    Args:
        builder (GraphBuilder): the builder of the data (node types, relations, encoders).
        task (str, optional): ``"classification"``, ``"multilabel"`` or ``"regression"``.
            (default: :obj:`"classification"`)
        num_classes (int, optional): classes or labels (classification tasks).
        out_channels (int, optional): targets per sample (regression). (default: :obj:`1`)
        hidden (int, optional): features per node. (default: :obj:`64`)
        num_layers (int, optional): fusion blocks. (default: :obj:`2`)
        conv (str, optional): ``"gcn"``, ``"gat"``, ``"hgt"``, ``"gated"`` or a registered conv.
            (default: :obj:`"gat"`)
        knn (int, optional): dynamic k-NN cross-modal edges (see :class:`~graphfuse.nn.FusionEncoder`).
        heads (int, optional): attention heads. (default: :obj:`4`)
        pool (str, optional): per-node-type pooling, ``"mean"``, ``"max"``, ``"sum"`` or
            ``"attention"``. (default: :obj:`"mean"`)
        fuse (str, optional): fusion across node types, ``"attention"``, ``"gate"``, ``"concat"``
            or ``"virtual"``. (default: :obj:`"attention"`)
        dropout (float, optional): in the fusion blocks and the head. (default: :obj:`0.1`)
        ffn_ratio (float, optional): feed-forward size of the fusion blocks. (default: :obj:`2`)
        head_hidden (int, optional): a two-layer head of this hidden size. (default: :obj:`None`)

    Shapes:
        - **input:** a PyG batch from :meth:`GraphBuilder.collate` (or one graph)
        - **output:** :math:`(B, K)` logits or :math:`(B, C_{out})` predictions
    """

    def __init__(self, builder: GraphBuilder, task: str = "classification", num_classes: int | None = None,
                 out_channels: int = 1, hidden: int = 64, num_layers: int = 2, conv: str = "gat",
                 knn: int | None = None, heads: int = 4, pool: str = "mean", fuse: str = "attention",
                 dropout: float = 0.1, ffn_ratio: float = 2.0, head_hidden: int | None = None,
                 **block_kwargs: Any) -> None:
        super().__init__()
        check_choice(task, TASKS, "GraphFusionModel 'task'")
        self.builder = builder
        self.backbone = GraphBackbone(builder, hidden, num_layers, conv, knn, heads, ffn_ratio, dropout,
                                      **block_kwargs)
        self.readout = Readout(hidden, builder.node_types, pool=pool, fuse=fuse)
        if task == "regression":
            self.head = RegressionHead(self.readout.out_channels, out_channels, head_hidden, dropout)
            self.task = RegressionTask(self.head)
        else:
            if num_classes is None:
                raise ValueError(f"GraphFusionModel with task={task!r} needs 'num_classes'")
            self.head = ClassificationHead(self.readout.out_channels, num_classes, head_hidden, dropout,
                                           multilabel=task == "multilabel")
            self.task = ClassificationTask(self.head)

    def embed(self, batch, node_types: Collection[str] | None = None) -> Tensor:
        """The fused vector of each sample ``[B, readout.out_channels]``, from the whole graph or the
        subgraph of ``node_types``."""
        h_dict, batch_dict, num_samples = self.backbone(as_batch(batch), node_types)
        return self.readout(h_dict, batch_dict, num_samples)

    def forward(self, batch) -> Tensor:
        return self.head(self.embed(batch))

    def __repr__(self) -> str:
        fusion = self.backbone.fusion
        return (f"{self.__class__.__name__}(task={self.task.name!r}, {fusion!r}, {self.readout!r}, "
                f"{self.head!r})")
