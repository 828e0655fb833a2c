"""Models assembled by name: ``create_model("graph-gat", builder=builder, task="classification", num_classes=10)``.

Graph fusion variants: ``graph-gcn``, ``graph-gat``, ``graph-hgt``, ``graph-gated`` (relational
message passing over the builder's graph) and ``graph-gat-knn`` (attention over dynamic k-NN
cross-modal edges, chosen before every block; ``knn_update="forward"`` chooses them once per forward
from the fusion's input, which saves the top-k and the sparse structure of all but one block).
``task="retrieval"`` gives a :class:`GraphRetrievalModel` (dual encoder + re-ranker); the other tasks
a :class:`GraphFusionModel`.

Classic fusion without a graph (family ``"baseline"``, registered by :mod:`graphfuse.baselines`,
which ``import graphfuse`` imports): ``early-fusion``, ``late-fusion``, ``tensor-fusion``,
``lowrank-fusion``, ``transformer-fusion`` and ``mult``; one modality (family ``"unimodal"``):
``unimodal`` with ``modality="image"``.
"""
from __future__ import annotations

from typing import Any

import torch

from graphfuse.deprecation import moved
from graphfuse.models.backbone import GraphBackbone
from graphfuse.models.classifier import GraphFusionModel
from graphfuse.models.registry import create_model, list_models, model_family, register_model
from graphfuse.models.retrieval import RERANK_OPTIONS, RETRIEVAL_OPTIONS, GraphRetrievalModel

__all__ = [
    "GraphBackbone",
    "GraphFusionModel",
    "GraphRetrievalModel",
    "create_model",
    "list_models",
    "model_family",
    "register_model",
]


def _graph_model(conv: str, **defaults: Any):
    def factory(task: str = "classification", **kwargs: Any) -> torch.nn.Module:
        if "conv" in kwargs and kwargs["conv"] != conv:
            raise ValueError(f"graph-{conv} models use conv={conv!r}, got conv={kwargs['conv']!r}; pick the model "
                             f"of that conv instead ({list_models('graph-*')})")
        kwargs = {**defaults, **kwargs, "conv": conv}
        if task == "retrieval":
            heads_only = sorted({"num_classes", "out_channels", "head_hidden_channels", "head_hidden"} & kwargs.keys())
            if heads_only:
                raise ValueError(f"task='retrieval' has no prediction head; drop {heads_only} (its space's size is "
                                 f"'embed_dim')")
            return GraphRetrievalModel(**kwargs)
        retrieval_only = sorted((RETRIEVAL_OPTIONS | RERANK_OPTIONS) & kwargs.keys())
        if retrieval_only:
            raise ValueError(f"{retrieval_only} only apply to task='retrieval', not task={task!r}")
        return GraphFusionModel(task=task, **kwargs)

    factory.__doc__ = f"Graph fusion with conv={conv!r}{''.join(f', {k}={v!r}' for k, v in defaults.items())}."
    return factory


for _conv in ("gcn", "gat", "hgt", "gated"):
    register_model(f"graph-{_conv}")(_graph_model(_conv))
register_model("graph-gat-knn")(_graph_model("gat", knn=8))


#: Deprecated aliases (one release): the baseline models moved to graphfuse.baselines.
MOVED_TO_BASELINES = frozenset({"BaselineFusionModel", "BaselineRetrievalModel"})


__getattr__ = moved(__name__, "graphfuse.baselines", MOVED_TO_BASELINES)
