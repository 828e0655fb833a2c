"""Reading the attention of every layer of a model: a recorder on its attention convs."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from graphfuse.nn.conv.base import RelationalConv

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class LayerAttention:
    """The attention of one conv call.

    Args:
        name: the conv's module path in the model (e.g. ``"backbone.fusion.blocks.0.conv"``).
        call: which call of that conv it was (a retrieval model encodes two sides through the
            same layers: call 0 and call 1).
        weights: ``{edge_type: (edge_index [2, E], alpha [E, H])}``, as a conv returns them with
            ``return_attention_weights=True``: ``edge_index`` holds the batch's node indices per
            node type (source row 0, destination row 1), ``alpha[e, h]`` the weight destination
            ``edge_index[1, e]`` gives source ``edge_index[0, e]`` in head ``h``.
    """

    name: str
    call: int
    weights: dict[EdgeType, tuple[Tensor, Tensor]]

    @property
    def heads(self) -> int:
        return next(iter(self.weights.values()))[1].size(1) if self.weights else 0

    def cpu(self) -> LayerAttention:
        """The same attention with its tensors on the CPU."""
        return LayerAttention(self.name, self.call, {edge_type: (edge_index.cpu(), alpha.cpu())
                                                     for edge_type, (edge_index, alpha) in self.weights.items()})

    @property
    def stage(self) -> str:
        """``"unimodal"`` for the per-modality blocks of a graph model, else ``"fusion"``."""
        return "unimodal" if ".unimodal." in f".{self.name}." else "fusion"


class AttentionRecorder:
    """Records the attention weights of every attention conv of ``model`` while it runs, in call
    order, without changing what the model returns.

    Convs without attention (``conv="gcn"`` or ``"gated"``) record nothing; a model built from
    them, or with none of graphfuse's convs (the baselines), leaves :attr:`layers` empty.

    Example:
        >>> with AttentionRecorder(model) as recorder:
        ...     model(batch)
        >>> [layer.name for layer in recorder.layers]
        ['backbone.unimodal.blocks.0.conv', 'backbone.fusion.blocks.0.conv']
    """

    def __init__(self, model: torch.nn.Module) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"AttentionRecorder records a torch.nn.Module, got {type(model).__name__}")
        self.convs = {conv: name for name, conv in model.named_modules() if isinstance(conv, RelationalConv)}
        self.layers: list[LayerAttention] = []
        self._calls: dict[str, int] = {}

    def _record(self, conv: RelationalConv, weights: dict) -> None:
        name = self.convs[conv]
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        self.layers.append(LayerAttention(name, call, {edge_type: (edge_index.detach(), alpha.detach().float())
                                                       for edge_type, (edge_index, alpha) in weights.items()}))

    def clear(self) -> None:
        """Forgets what was recorded."""
        self.layers.clear()
        self._calls.clear()

    def __enter__(self) -> AttentionRecorder:
        for conv in self.convs:
            if conv.attention_recorder is not None:
                raise RuntimeError(f"The conv {self.convs[conv]!r} is already being recorded; one AttentionRecorder "
                                   "per model at a time")
            conv.attention_recorder = self._record
        return self

    def __exit__(self, *exc_info) -> None:
        for conv in self.convs:
            conv.attention_recorder = None
