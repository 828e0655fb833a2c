"""Node sets (the nodes of one modality of one sample, with their intra-modal edges) and node specs
(what the nodes of a type carry, as a model needs to know it)."""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_edge_index, check_finite

NODE_ATTRIBUTES = ("x", "pos", "time")
"""The node-level attributes a :class:`NodeSet` may carry, in the order they are stored."""


@dataclass
class NodeSet:
    r"""The nodes of one modality of one sample, with their intra-modal edges.

    Args:
        x (torch.Tensor): node features :math:`[N, *]` (token ids :math:`[N]` for text).
        edge_index (torch.Tensor): intra-modal edges :math:`[2, E]` (``torch.long``), local
            node indices.
        pos (torch.Tensor, optional): node positions :math:`[N, *]` (token or frame index,
            patch ``(row, col)``).
        time (torch.Tensor, optional): ``(start, end)`` times in seconds :math:`[N, 2]`;
            ``NaN`` marks an unknown span.
        structure (Hashable, optional): a key promising that node sets of the same modality
            with equal keys have equal ``edge_index`` and ``pos`` (e.g.
            ``("grid", 7, 7, 4, False)``), so batching offsets one shared template instead of
            concatenating every sample's. ``None`` when the structure depends on the data.
    """

    x: Tensor
    edge_index: Tensor
    pos: Tensor | None = None
    time: Tensor | None = None
    structure: Hashable | None = None
    #: Set by :meth:`validate`: batching takes such node sets as they are, and checks any other
    #: node set given in a sample first (cheaply, on the CPU, once).
    validated: bool = field(default=False, compare=False, repr=False)

    @property
    def num_nodes(self) -> int:
        return self.x.size(0)

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    def attributes(self) -> dict[str, Tensor]:
        """The node-level tensors that are set, in storage order."""
        return {name: getattr(self, name) for name in NODE_ATTRIBUTES if getattr(self, name) is not None}

    @classmethod
    def empty(
        cls,
        feature_shape: Sequence[int] = (),
        dtype: torch.dtype = torch.float32,
        pos_shape: Sequence[int] | None = None,
        pos_dtype: torch.dtype = torch.long,
        timed: bool = False,
    ) -> NodeSet:
        """A node set with no nodes, shaped like those a modality produces.

        Every sample graph holds every node type of its builder, with zero nodes where the
        sample lacks that modality, so that batches keep one schema.
        """
        return cls(
            x=torch.empty(0, *feature_shape, dtype=dtype),
            edge_index=torch.empty(2, 0, dtype=torch.long),
            pos=None if pos_shape is None else torch.empty(0, *pos_shape, dtype=pos_dtype),
            time=torch.empty(0, 2) if timed else None,
        )

    def validate(self, modality: str) -> NodeSet:
        """Checks shapes, dtypes and values; raises an error naming ``modality`` if wrong."""
        if not isinstance(self.x, Tensor) or self.x.dim() == 0:
            raise TypeError(
                f"Modality '{modality}' produced node features of type "
                f"{type(self.x).__name__} with shape {tuple(getattr(self.x, 'shape', ()))}; "
                f"expected a tensor [num_nodes, ...]")
        num_nodes = self.x.size(0)
        if self.x.is_floating_point():
            check_finite(self.x, modality, "node features")
        for name in ("pos", "time"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Tensor) or value.dim() == 0 or value.size(0) != num_nodes:
                raise ValueError(
                    f"Modality '{modality}' produced '{name}' with shape "
                    f"{tuple(getattr(value, 'shape', ()))} for {num_nodes} nodes; expected "
                    f"[{num_nodes}, ...]")
        if self.time is not None:
            if self.time.dim() != 2 or self.time.size(1) != 2 or not self.time.is_floating_point():
                raise ValueError(
                    f"Modality '{modality}' produced 'time' of shape {tuple(self.time.shape)} "
                    f"and dtype {self.time.dtype}; expected floating (start, end) seconds "
                    f"[{num_nodes}, 2]")
            known = ~self.time.isnan().any(dim=1)
            check_finite(self.time[known], modality, "time spans")
            if bool((self.time[known, 1] < self.time[known, 0]).any()):
                raise ValueError(f"Modality '{modality}' has a time span whose end is before its start")
        check_edge_index(self.edge_index, num_nodes, num_nodes, f"intra-modal edges of '{modality}'")
        self.validated = True
        return self


@dataclass(frozen=True)
class NodeSpec:
    """What the nodes of one type carry, as an encoder needs to know it.

    Args:
        kind (str): the registered name of the modality (``"text"``, ``"image"``, ``"audio"``,
            ``"features"``, a user's), or ``"virtual"`` for virtual nodes.
        feature_shape (tuple[int, ...]): the shape of one node's features ``x`` (``()`` for ids).
        integer (bool): ``x`` holds ids (tokens, virtual node indices) rather than features.
        positions (tuple[int, ...] or None): the shape of one node's ``pos``; ``None`` without.
        timed (bool): nodes carry ``(start, end)`` times.
        num_embeddings (int, optional): the number of ids (vocabulary size) when ``integer``.
        max_positions (int, optional): the longest sequence, where the modality bounds it.
        pretrained (bool): the features are a pretrained encoder's hidden states (frozen, or from
            ``backbone``), at the scale of that network rather than of raw inputs.
        backbone (torch.nn.Module, optional): a trainable :class:`~graphfuse.backbones.Backbone`
            that the model runs on these nodes (their ``x`` are its inputs cut per node: token
            ids, pixel patches, waveform chunks); shared with the model, not compared, hashed or
            shown.
    """

    kind: str
    feature_shape: tuple[int, ...] = ()
    integer: bool = False
    positions: tuple[int, ...] | None = None
    timed: bool = False
    num_embeddings: int | None = None
    max_positions: int | None = None
    pretrained: bool = False
    backbone: Any = field(default=None, compare=False, hash=False, repr=False)

    @property
    def in_channels(self) -> int:
        """Features per node (the flattened ``feature_shape``)."""
        return math.prod(self.feature_shape)
