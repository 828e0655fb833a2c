"""The baselines in the model registry: ``create_model("early-fusion", builder=..., task=...)``.

``early-fusion``, ``late-fusion``, ``tensor-fusion``, ``lowrank-fusion``, ``transformer-fusion``
and ``mult`` (family ``"baseline"``), and ``unimodal`` (family ``"unimodal"``, one modality by
``modality=``). ``task="retrieval"`` gives a :class:`~graphfuse.baselines.BaselineRetrievalModel`
(dual encoder; early and transformer fusion only), the other tasks a
:class:`~graphfuse.baselines.BaselineFusionModel`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from graphfuse.baselines.models import RETRIEVAL_FUSIONS, BaselineFusionModel, BaselineRetrievalModel
from graphfuse.data import GraphBuilder, GraphSchema
from graphfuse.models.registry import register_model
from graphfuse.models.retrieval import RETRIEVAL_OPTIONS

__all__ = ["BASELINES", "unimodal"]

# "hidden" and "head_hidden" are the deprecated names of "hidden_channels" and "head_hidden_channels".
COMMON_OPTIONS = {"schema", "hidden_channels", "hidden", "num_layers", "heads", "dropout", "ffn_ratio"}
PREDICTION_OPTIONS = {"num_classes", "out_channels", "head_hidden_channels", "head_hidden", "node_types"}
FUSION_OPTIONS = {"tensor": {"tensor_dim"}, "lowrank": {"rank"}}


def _check_options(name: str, task: str, kwargs: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(kwargs.keys() - allowed)
    if not unknown:
        return
    if task == "retrieval" and set(unknown) <= PREDICTION_OPTIONS | {"tensor_dim", "rank"}:
        raise ValueError(f"create_model({name!r}, task='retrieval') builds a dual encoder without a prediction head "
                         f"or fusion tensor; drop {unknown} (its space's size is 'embed_dim')")
    if task != "retrieval" and set(unknown) <= RETRIEVAL_OPTIONS:
        raise ValueError(f"{unknown} only apply to task='retrieval', not task={task!r}")
    raise TypeError(f"create_model({name!r}, task={task!r}) got unknown keyword arguments {unknown}; it accepts "
                    f"{sorted(allowed | {'task'})}")


def _baseline_model(name: str, fusion: str):
    def factory(task: str = "classification", **kwargs: Any) -> torch.nn.Module:
        if "fusion" in kwargs:
            if kwargs["fusion"] != fusion:
                raise ValueError(f"{name!r} models use fusion={fusion!r}, got fusion={kwargs['fusion']!r}; pick the "
                                 f"model of that fusion instead (baselines: {sorted(BASELINES)})")
            kwargs = {k: v for k, v in kwargs.items() if k != "fusion"}
        if task == "retrieval":
            if fusion not in RETRIEVAL_FUSIONS:
                raise ValueError(f"{name!r} has no retrieval form: retrieval needs a dual encoder that encodes the "
                                 f"query and gallery sides apart, and {fusion} fusion reads all modalities of a "
                                 f"sample jointly; use 'early-fusion' or 'transformer-fusion' with task='retrieval'")
            _check_options(name, task, kwargs, COMMON_OPTIONS | RETRIEVAL_OPTIONS)
            return BaselineRetrievalModel(fusion=fusion, **kwargs)
        _check_options(name, task, kwargs, COMMON_OPTIONS | PREDICTION_OPTIONS | FUSION_OPTIONS.get(fusion, set()))
        return BaselineFusionModel(task=task, fusion=fusion, **kwargs)

    factory.__doc__ = f"Classic multimodal fusion without a graph: BaselineFusionModel(fusion={fusion!r})."
    return factory


BASELINES = {"early-fusion": "early", "late-fusion": "late", "tensor-fusion": "tensor",
             "lowrank-fusion": "lowrank", "transformer-fusion": "transformer", "mult": "mult"}
for _name, _fusion in BASELINES.items():
    register_model(_name, family="baseline")(_baseline_model(_name, _fusion))


@register_model("unimodal", family="unimodal")
def unimodal(task: str = "classification", modality: str | None = None, **kwargs: Any) -> BaselineFusionModel:
    """One modality (``modality="image"``, a node type of the builder): its tokens through a
    :class:`~graphfuse.nn.ModalityEncoder` and an MLP, then the head (``fusion="early"`` over one
    modality). Every sample needs that modality."""
    schema = kwargs.get("schema")
    known = list(schema.modalities) if isinstance(schema, (GraphBuilder, GraphSchema)) else "the builder's node types"
    if modality is None:
        raise ValueError(f"'unimodal' needs the modality it reads, e.g. modality='image'; one of {known}")
    if not isinstance(modality, str) or (isinstance(schema, (GraphBuilder, GraphSchema))
                                         and modality not in schema.modalities):
        raise ValueError(f"'unimodal' got modality={modality!r}; it must be one node type of the builder, one of "
                         f"{known}")
    if task == "retrieval":
        raise ValueError("'unimodal' reads one modality, and retrieval matches two; use 'early-fusion' or "
                         "'transformer-fusion' with task='retrieval', query=... and gallery=...")
    fixed = sorted({"node_types", "fusion"} & kwargs.keys())
    if fixed:
        raise ValueError(f"'unimodal' reads modality={modality!r} by early fusion; drop {fixed} (for several "
                         f"modalities use a 'baseline' model such as 'early-fusion' with node_types=...)")
    _check_options("unimodal", task, kwargs, COMMON_OPTIONS | (PREDICTION_OPTIONS - {"node_types"}))
    return BaselineFusionModel(task=task, fusion="early", node_types=(modality,), **kwargs)
