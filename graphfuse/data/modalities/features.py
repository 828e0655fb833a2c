"""Precomputed features (e.g. a pretrained encoder's output) -> nodes of any modality."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import (
    as_tensor,
    check_bool,
    check_edge_index,
    check_int,
    check_shape,
    check_str,
    to_float32,
)
from graphfuse.data.edges import chain_edges
from graphfuse.data.functions import FUNCTIONS, function_name
from graphfuse.data.modalities.base import Modality, register_modality
from graphfuse.data.nodes import NodeSet

EdgeRule = str | Callable[[NodeSet], Tensor] | None


@register_modality("features")
class FeatureModality(Modality):
    r"""Nodes from a precomputed feature matrix :math:`[N, D]`, one node per row.

    Raw input: a tensor (or array) :math:`[N, D]`, or a mapping with ``"x"`` and, as set up,
    ``"pos"`` :math:`[N, *]` and ``"time"`` :math:`[N, 2]` (seconds).

    Args:
        dim (int): feature size :math:`D`.
        positions (bool, optional): inputs carry ``pos``. (default: :obj:`False`)
        timed (bool, optional): inputs carry ``time`` spans (then temporal alignment applies).
            (default: :obj:`False`)
        pos_shape (tuple, optional): trailing shape of ``pos``. (default: :obj:`()`, an index per node)
        pos_dtype (torch.dtype, optional): dtype of ``pos``; floating positions given for an
            integer dtype must be whole numbers. (default: :obj:`torch.long`)
        edges (str or callable, optional): the intra-modal edge rule: ``None`` for none,
            ``"chain"`` to join rows at most ``window`` apart, or a callable taking the
            :class:`NodeSet` (without edges) and returning local edges :math:`[2, E]` (or the
            name it is registered under with :func:`~graphfuse.data.register_function`, which a
            saved builder needs). (default: :obj:`None`)
        window (int, optional): reach of the ``"chain"`` rule. (default: :obj:`1`)
        relation (str, optional): name of the intra-modal relation. (default: :obj:`"intra"`)
    """

    def __init__(self, dim: int, positions: bool = False, timed: bool = False, pos_shape: tuple = (),
                 pos_dtype: torch.dtype = torch.long, edges: EdgeRule = None, window: int = 1,
                 relation: str = "intra") -> None:
        check_int(dim, "FeatureModality 'dim'")
        check_int(window, "FeatureModality 'window'")
        check_bool(positions, "FeatureModality 'positions'")
        check_bool(timed, "FeatureModality 'timed'")
        check_str(relation, "FeatureModality 'relation'")
        if not isinstance(pos_dtype, torch.dtype):
            raise TypeError(f"FeatureModality 'pos_dtype' must be a torch.dtype, got {pos_dtype!r}")
        if isinstance(edges, str) and edges != "chain" and edges in FUNCTIONS:
            edges = FUNCTIONS.get(edges)
        if not (edges is None or edges == "chain" or callable(edges)):
            raise ValueError(f"FeatureModality 'edges' must be None, 'chain' or a callable, got {edges!r}, which is "
                             f"not a registered function's name either (registered: {FUNCTIONS.names()}); register "
                             f"one with @register_function(name), importing its module before loading a saved builder")
        self.dim = dim
        self.positions = positions
        self.timed = timed
        self.pos_shape = check_shape(pos_shape, "FeatureModality 'pos_shape'")
        self.pos_dtype = pos_dtype
        self.edges = edges
        self.window = window
        self.relation = None if edges is None else relation

    def featurize(self, raw: Any) -> NodeSet:
        if isinstance(raw, Mapping):
            expected = {"x"} | ({"pos"} if self.positions else set()) | ({"time"} if self.timed else set())
            if set(raw) != expected:
                raise ValueError(
                    f"Modality '{self.name}' received a mapping with keys {sorted(raw)}; this "
                    f"FeatureModality(positions={self.positions}, timed={self.timed}) expects {sorted(expected)}")
            x, pos, time = raw["x"], raw.get("pos"), raw.get("time")
        elif self.positions or self.timed:
            raise ValueError(
                f"Modality '{self.name}' received a bare {type(raw).__name__} but is set up with "
                f"positions={self.positions}, timed={self.timed}; pass a mapping with 'x' and those entries")
        else:
            x, pos, time = raw, None, None
        x = as_tensor(x, f"Modality '{self.name}'", "features as a tensor or array [N, D]")
        if x.dim() != 2 or x.size(1) != self.dim or x.size(0) == 0:
            raise ValueError(
                f"Modality '{self.name}' received features of shape {tuple(x.shape)}; expected "
                f"[num_nodes >= 1, {self.dim}] as set by FeatureModality(dim={self.dim})")
        if not x.is_floating_point():
            raise TypeError(f"Modality '{self.name}' received features of dtype {x.dtype}; expected a floating dtype")
        x = to_float32(x, self.name, "features")
        if pos is not None:
            pos = as_tensor(pos, f"Modality '{self.name}' 'pos'", "a tensor or array")
            if pos.is_floating_point() and not self.pos_dtype.is_floating_point:
                self._check_whole(pos)
            pos = pos.to(self.pos_dtype)
            if tuple(pos.shape) != (x.size(0), *self.pos_shape):
                raise ValueError(
                    f"Modality '{self.name}' received 'pos' of shape {tuple(pos.shape)}; expected "
                    f"{(x.size(0), *self.pos_shape)}")
        if time is not None:
            time = as_tensor(time, f"Modality '{self.name}' 'time'", "a tensor or array [N, 2]").float()
        nodes = NodeSet(x=x, edge_index=torch.empty(2, 0, dtype=torch.long), pos=pos, time=time)
        nodes.edge_index = self._edges(nodes)
        if pos is None and not callable(self.edges):
            nodes.structure = (self.edges, x.size(0), self.window)
        return nodes.validate(self.name)

    def _check_whole(self, pos: Tensor) -> None:
        """Refuses floating positions that casting to the integer ``pos_dtype`` would truncate."""
        not_whole = pos.frac().ne(0)  # NaN and inf included: their fraction is NaN
        if bool(not_whole.any()):
            example = float(pos[not_whole][0])
            raise ValueError(
                f"Modality '{self.name}' received 'pos' with {int(not_whole.sum())} value(s) that are not whole "
                f"numbers (e.g. {example:g}), but its positions are {self.pos_dtype}, which would truncate them; pass "
                f"whole-number positions, or create the modality with pos_dtype=torch.float32 for continuous ones")

    def _edges(self, nodes: NodeSet) -> Tensor:
        if self.edges is None:
            return nodes.edge_index
        if self.edges == "chain":
            return chain_edges(nodes.num_nodes, self.window)
        edge_index = self.edges(nodes)
        check_edge_index(edge_index, nodes.num_nodes, nodes.num_nodes, f"edge rule's output of '{self.name}'")
        return edge_index

    def empty(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.dim,),
                             pos_shape=self.pos_shape if self.positions else None,
                             pos_dtype=self.pos_dtype, timed=self.timed)

    def get_config(self) -> dict[str, Any]:
        """The settings, ``pos_dtype`` as its name (``"int64"``) and an edge function as its registered name."""
        edges = self.edges
        if callable(edges):
            edges = function_name(edges, f"FeatureModality '{self.name}' edge rule")
        return {"dim": self.dim, "positions": self.positions, "timed": self.timed, "pos_shape": list(self.pos_shape),
                "pos_dtype": str(self.pos_dtype).removeprefix("torch."), "edges": edges, "window": self.window,
                "relation": self.relation or "intra"}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], folder: Path | None = None) -> FeatureModality:
        config = dict(config)
        dtype = getattr(torch, str(config.get("pos_dtype", "int64")), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"FeatureModality config 'pos_dtype' must name a torch dtype, got {config['pos_dtype']!r}")
        return cls(**{**config, "pos_dtype": dtype})

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(dim={self.dim}, positions={self.positions}, "
                f"timed={self.timed}, edges={self.edges!r})")
