"""Explaining a trained model's predictions: attention, gradient x input and modality contributions."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from graphfuse.data import GraphBuilder
from graphfuse.data.items import split_item
from graphfuse.explain.attention import AttentionRecorder
from graphfuse.explain.explanation import Explanation
from graphfuse.nn import NodeEncoders

KINDS = ("classification", "multilabel", "regression", "retrieval")


def _model_and_builder(model: Any, builder: GraphBuilder | None) -> tuple[torch.nn.Module, GraphBuilder, str]:
    from graphfuse.pipeline import Pipeline

    if isinstance(model, Pipeline):
        if builder is not None:
            raise ValueError("explain takes a Pipeline with its own builder: leave 'builder' out")
        return model.model, model.builder, model.task
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"explain takes a model (torch.nn.Module, e.g. from create_model) or a Pipeline, got "
                        f"{type(model).__name__}")
    if not isinstance(builder, GraphBuilder):
        raise TypeError(f"explain needs the GraphBuilder the model's data was built with: explain(model, samples, "
                        f"builder=builder); got builder={type(builder).__name__}")
    kind = getattr(model, "task_name", None)
    if kind not in KINDS:
        raise ValueError(f"explain reads the model's task from model.task_name (models from create_model set it), "
                         f"which must be one of {KINDS}; {type(model).__name__} has {kind!r}")
    return model, builder, kind


def _scores(model: torch.nn.Module, kind: str, batch, target: Tensor | None
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(prediction [B, K], target [B], score [B], raw score [B])`` of one forward pass: the raw
    score is the target's logit where the score is a probability (its gradient does not vanish
    where the probability saturates)."""
    output = model(batch)
    if kind == "retrieval":
        similarity = (output["query"] * output["gallery"]).sum(-1, keepdim=True).float()
        zeros = torch.zeros(similarity.size(0), dtype=torch.long, device=similarity.device)
        return similarity, zeros, similarity[:, 0], similarity[:, 0]
    output = output.float()
    if kind == "classification":
        prediction = output.softmax(-1)
    elif kind == "multilabel":
        prediction = output.sigmoid()
    else:
        prediction = output
    if target is None:
        target = prediction.argmax(-1) if kind != "regression" else torch.zeros(
            output.size(0), dtype=torch.long, device=output.device)
    if target.numel() and not 0 <= int(target.min()) <= int(target.max()) < output.size(1):
        raise ValueError(f"explain 'target' must index the model's {output.size(1)} outputs (0 to "
                         f"{output.size(1) - 1}), got {target.tolist()}")
    index = target.view(-1, 1)
    return prediction, target, prediction.gather(1, index).squeeze(1), output.gather(1, index).squeeze(1)


def _check_target(target: Any, num_samples: int, kind: str) -> Tensor | None:
    if target is None:
        return None
    if kind == "retrieval":
        raise ValueError("explain of a retrieval model explains the similarity of each sample's two sides; "
                         "leave 'target' out")
    if isinstance(target, int) and not isinstance(target, bool):
        return torch.full((num_samples,), target, dtype=torch.long)
    target = torch.as_tensor(target)
    if target.dtype not in (torch.int32, torch.int64) or target.shape != (num_samples,):
        raise ValueError(f"explain 'target' is one index (int) or one per sample ([{num_samples}] integers): the "
                         f"class, label or output to explain; got {target.dtype} {tuple(target.shape)}")
    return target.long()


def _encoder_outputs(model: torch.nn.Module) -> tuple[list, list]:
    """Hooks that keep every output of the model's node encoders with its gradient."""
    captured: list[dict[str, Tensor]] = []

    def keep(_module, _inputs, output: dict[str, Tensor]) -> None:
        for tensor in output.values():
            if tensor.requires_grad:
                tensor.retain_grad()
        captured.append(output)

    hooks = [module.register_forward_hook(keep) for module in model.modules() if isinstance(module, NodeEncoders)]
    return captured, hooks


def explain(model: Any, samples: Sequence[Any], builder: GraphBuilder | None = None,
            target: int | Sequence[int] | Tensor | None = None) -> Explanation:
    """Explains ``model``'s predictions on ``samples`` (raw samples, node sets, or
    ``(sample, target)`` pairs whose targets are ignored), in one batch.

    * **attention**: every attention layer's weights (per layer, per head, per relation), read
      as the model runs (:class:`~graphfuse.explain.AttentionRecorder`);
    * **gradient x input** per node: the gradient of the explained score (of the target's logit
      where the score is a probability) with respect to each node's encoded input, times that
      input;
    * **modality contributions**: the score minus the score with each modality left out of the
      sample (the model predicts from any subset of modalities).

    The explained score is the probability of ``target`` (default: the predicted class or
    label), the regression output ``target`` (default: 0), or for retrieval the cosine
    similarity of each sample's query and gallery sides. Samples may lack modalities.

    Args:
        model: a model from :func:`~graphfuse.models.create_model` (or any with ``task_name``) or a
            :class:`~graphfuse.Pipeline`.
        samples: the samples to explain.
        builder (GraphBuilder): the builder of the model's data (a pipeline brings its own).
        target (int or sequence, optional): the class, label or output index to explain, one for
            all samples or one per sample.

    Example:
        >>> explanation = explain(pipeline, test_samples[:4])
        >>> explanation.attention(0, query="text", key="audio")   # [tokens, frames]
        >>> explanation.contributions["audio"]                     # [4]
    """
    model, builder, kind = _model_and_builder(model, builder)
    if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence) or len(samples) == 0:
        raise ValueError(f"explain takes a non-empty list of samples, got {type(samples).__name__}")
    raw = [split_item(item)[0] for item in samples]
    target = _check_target(target, len(raw), kind)
    node_sets = builder.node_sets_many(raw)
    device = next(model.parameters()).device
    graph = builder.collate(node_sets)
    training = model.training
    model.eval()
    captured, hooks = _encoder_outputs(model)
    try:
        with AttentionRecorder(model) as recorder, torch.enable_grad():
            # Batch.to moves the stores in place: the explanation keeps the CPU copy.
            on_device = graph if device.type == "cpu" else graph.clone().to(device)
            prediction, target, score, raw_score = _scores(model, kind, on_device,
                                                           None if target is None else target.to(device))
            raw_score.sum().backward()
        contributions = _contributions(model, kind, builder, node_sets, target, score.detach())
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
        model.train(training)
    attributions: dict[str, Tensor] = {}
    for output in captured:
        for node_type, states in output.items():
            if states.grad is not None:
                value = (states.detach() * states.grad).sum(-1).float().cpu()
                attributions[node_type] = attributions.get(node_type, 0) + value
    for node_type in graph.node_types:
        attributions.setdefault(node_type, torch.zeros(graph[node_type].num_nodes))
    return Explanation(graph=graph, kind=kind, target=target.cpu(), score=score.detach().cpu(),
                       prediction=prediction.detach().cpu(), layers=[layer.cpu() for layer in recorder.layers],
                       node_attributions=attributions, contributions=contributions, samples=list(samples))


@torch.no_grad()
def _contributions(model: torch.nn.Module, kind: str, builder: GraphBuilder, node_sets: Sequence, target: Tensor,
                   score: Tensor) -> dict[str, Tensor]:
    """``{modality: [B]}`` score minus the score without the modality (nan where it cannot be left out)."""
    device = score.device
    sides = _sides(model) if kind == "retrieval" else None
    out = {}
    for modality in builder.modalities:
        change = torch.full((len(node_sets),), float("nan"))
        keep = [i for i, nodes in enumerate(node_sets) if modality in nodes and _removable(nodes, modality, sides)]
        if keep:
            reduced = [{t: n for t, n in node_sets[i].items() if t != modality} for i in keep]
            index = torch.tensor(keep, device=device)
            _, _, without, _ = _scores(model, kind, builder.collate(reduced).to(device), target[index])
            change[keep] = (score[index] - without).float().cpu()
        out[modality] = change
    return out


def _sides(model: torch.nn.Module) -> list[tuple[str, ...]]:
    return [tuple(model.side_types(side)) for side in ("query", "gallery")] if hasattr(model, "side_types") else []


def _removable(nodes, modality: str, sides: list[tuple[str, ...]] | None) -> bool:
    """Whether the sample keeps something to predict from without ``modality`` (for retrieval, on
    both sides)."""
    rest = [t for t in nodes if t != modality]
    if not rest:
        return False
    if sides is None:
        return True
    return all(any(t in side for t in rest) for side in sides)
