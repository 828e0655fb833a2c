"""Cross-modal edge strategies: which nodes of one modality send messages to which of another."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from graphfuse.checks import check_bool, check_edge_index, check_int, check_names, check_number, check_str
from graphfuse.config import as_json, constructor_config
from graphfuse.data.edges import full_bipartite_edges
from graphfuse.data.functions import function_name, get_function
from graphfuse.data.nodes import NodeSet
from graphfuse.registry import Registry

_RANDOM_CHUNK_ELEMENTS = 1 << 22


class CrossModalStrategy(ABC):
    """Decides the edges from the nodes of one modality (sources) to another (destinations).

    A strategy is saved as its registered name (:func:`register_strategy`) and :meth:`get_config`.

    Attributes:
        shape_only (bool): the edges depend only on the two node counts, so a builder computes
            them once per pair of counts and reuses them for every sample of that shape.
        requires (tuple): node attributes both node sets must carry (e.g. ``("time",)``).
    """

    shape_only: bool = False
    requires: tuple[str, ...] = ()

    @abstractmethod
    def edges(self, src: NodeSet, dst: NodeSet) -> Tensor:
        """Local edges :math:`[2, E]` (``torch.long``) from ``src`` nodes to ``dst`` nodes."""

    def max_edges(self, num_src: int, num_dst: int) -> int | None:
        """An upper bound on the edge count known before building, or ``None``."""
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON values; the default reads each argument of
        ``__init__`` back from the attribute of the same name."""
        return constructor_config(self, f"Cross-modal strategy {type(self).__name__}")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class FullBipartite(CrossModalStrategy):
    r"""Every source node sends to every destination node: :math:`N_s N_d` edges."""

    shape_only = True

    def edges(self, src: NodeSet, dst: NodeSet) -> Tensor:
        return full_bipartite_edges(src.num_nodes, dst.num_nodes)

    def max_edges(self, num_src: int, num_dst: int) -> int:
        return num_src * num_dst


class TemporalAlignment(CrossModalStrategy):
    r"""Joins nodes whose time spans overlap, e.g. a spoken word and the audio frames it spans.

    Source :math:`i` with span :math:`[s_i, e_i]` sends to destination :math:`j` when
    :math:`s_i - w < e_j` and :math:`s_j < e_i + w` for the widening ``window`` :math:`w`
    (seconds). Nodes whose span is unknown (``NaN``) get no edges.

    Args:
        window (float, optional): seconds added on both sides of each source span.
            (default: :obj:`0.0`)
    """

    requires = ("time",)

    def __init__(self, window: float = 0.0) -> None:
        self.window = check_number(window, "TemporalAlignment 'window' (seconds)")

    def edges(self, src: NodeSet, dst: NodeSet) -> Tensor:
        start, end = src.time[:, 0, None] - self.window, src.time[:, 1, None] + self.window
        overlap = (start < dst.time[None, :, 1]) & (dst.time[None, :, 0] < end)
        return overlap.nonzero().t()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(window={self.window})"


class _BudgetStrategy(CrossModalStrategy):
    shape_only = True

    def __init__(self, budget: int = 8) -> None:
        check_int(budget, f"{self.__class__.__name__} 'budget'")
        self.budget = budget

    def max_edges(self, num_src: int, num_dst: int) -> int:
        return num_dst * min(self.budget, num_src)

    def edges(self, src: NodeSet, dst: NodeSet) -> Tensor:
        num_src, num_dst = src.num_nodes, dst.num_nodes
        per_node = min(self.budget, num_src)
        if per_node == 0 or num_dst == 0:
            return torch.empty(2, 0, dtype=torch.long)
        sources = self._pick(num_src, num_dst, per_node)  # [num_dst, per_node]
        targets = torch.arange(num_dst).repeat_interleave(per_node)
        return torch.stack([sources.reshape(-1), targets])

    @abstractmethod
    def _pick(self, num_src: int, num_dst: int, per_node: int) -> Tensor:
        """Distinct source indices for every destination, :math:`[N_d, k]`."""

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(budget={self.budget})"


class StridedBipartite(_BudgetStrategy):
    r"""Each destination node receives from ``budget`` source nodes spread evenly over the
    source sequence, starting at its own relative position.

    Destination :math:`j` of :math:`N_d` receives from sources
    :math:`(\lfloor j N_s / N_d \rfloor + \lfloor t N_s / k \rfloor) \bmod N_s` for
    :math:`t < k = \min(\text{budget}, N_s)`: :math:`N_d k` edges, linear in the input length.

    Args:
        budget (int, optional): incoming cross-modal edges per destination node. (default: :obj:`8`)
    """

    def _pick(self, num_src: int, num_dst: int, per_node: int) -> Tensor:
        start = torch.arange(num_dst) * num_src // num_dst
        stride = torch.arange(per_node) * num_src // per_node
        return (start[:, None] + stride[None, :]) % num_src


class RandomBipartite(_BudgetStrategy):
    r"""Each destination node receives from ``budget`` distinct source nodes drawn at random.

    The draw is seeded by ``seed`` and the two node counts, so it is reproducible and every
    sample of the same shape gets the same pattern (as in fixed random sparse attention);
    :math:`N_d \min(\text{budget}, N_s)` edges.

    Args:
        budget (int, optional): incoming cross-modal edges per destination node. (default: :obj:`8`)
        seed (int, optional): seed of the draw. (default: :obj:`0`)
    """

    def __init__(self, budget: int = 8, seed: int = 0) -> None:
        super().__init__(budget)
        check_int(seed, "RandomBipartite 'seed'", 0)
        self.seed = seed

    def _pick(self, num_src: int, num_dst: int, per_node: int) -> Tensor:
        generator = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + num_src * 0x85EBCA77 + num_dst) % (1 << 63))
        rows_per_chunk = max(1, _RANDOM_CHUNK_ELEMENTS // num_src)
        chunks = []
        for first in range(0, num_dst, rows_per_chunk):
            rows = min(rows_per_chunk, num_dst - first)
            keys = torch.rand(rows, num_src, generator=generator)
            chunks.append(keys.topk(per_node, dim=1, sorted=False).indices)
        return torch.cat(chunks)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(budget={self.budget}, seed={self.seed})"


class CallableStrategy(CrossModalStrategy):
    """A user function ``fn(src: NodeSet, dst: NodeSet) -> Tensor[2, E]`` as a strategy.

    Args:
        fn (callable or str): returns local edges from ``src`` nodes to ``dst`` nodes; or the
            name it is registered under with :func:`~graphfuse.data.register_function` (a
            builder whose functions are registered can be saved).
        shape_only (bool, optional): promise that the edges depend only on the two node
            counts, so they can be cached per shape. (default: :obj:`False`)
    """

    def __init__(self, fn: Callable[[NodeSet, NodeSet], Tensor] | str, shape_only: bool = False) -> None:
        if isinstance(fn, str):
            fn = get_function(fn, "CallableStrategy 'fn'")
        if not callable(fn):
            raise TypeError(f"CallableStrategy expects a callable fn(src, dst) -> edge_index, got {fn!r}")
        self.fn = fn
        self.shape_only = check_bool(shape_only, "CallableStrategy 'shape_only'")

    def get_config(self) -> dict[str, Any]:
        return {"fn": function_name(self.fn, "CallableStrategy"), "shape_only": self.shape_only}

    def edges(self, src: NodeSet, dst: NodeSet) -> Tensor:
        edge_index = self.fn(src, dst)
        check_edge_index(edge_index, src.num_nodes, dst.num_nodes, f"output of cross-modal edge function {self.fn!r}")
        return edge_index

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({getattr(self.fn, '__name__', self.fn)!r})"


STRATEGIES: Registry[type[CrossModalStrategy]] = Registry(
    "cross-modal strategy", hint="Pass a CrossModalStrategy instance or a function (src, dst) -> edge_index, or "
    "register a strategy class with register_strategy('{name}', cls)")
"""Strategies by name, created with default arguments by :func:`resolve_strategy`."""


def register_strategy(name: str, cls: type[CrossModalStrategy]) -> type[CrossModalStrategy]:
    """Registers a :class:`CrossModalStrategy` subclass under ``name`` (once), for ``CrossEdges(..., name)``."""
    if not (isinstance(cls, type) and issubclass(cls, CrossModalStrategy)):
        raise TypeError(f"register_strategy('{name}') expects a CrossModalStrategy subclass, got {cls!r}")
    return STRATEGIES.register(name, cls)


register_strategy("full", FullBipartite)
register_strategy("temporal", TemporalAlignment)
register_strategy("strided", StridedBipartite)
register_strategy("random", RandomBipartite)
register_strategy("function", CallableStrategy)

StrategyLike = str | CrossModalStrategy | Callable[[NodeSet, NodeSet], Tensor]


def strategy_config(strategy: CrossModalStrategy, where: str) -> dict[str, Any]:
    """``{"type": registered name, "config": strategy.get_config()}``, the JSON form of ``strategy``
    (``where`` names its place in errors)."""
    name = STRATEGIES.name_of(type(strategy))
    if name is None:
        raise ValueError(f"{where} uses {type(strategy).__name__}, which is not registered, so it cannot be saved; "
                         f"register the class with register_strategy('some-name', cls)")
    try:
        config = strategy.get_config()
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return {"type": name, "config": as_json(config, f"{where} setting")}


def strategy_from_config(config: Mapping[str, Any]) -> CrossModalStrategy:
    """The strategy of :func:`strategy_config`'s output."""
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), Mapping):
        raise ValueError(f"A cross-modal strategy's config is {{'type': name, 'config': {{...}}}}, got {config!r}")
    return STRATEGIES.get(config.get("type"))(**config["config"])


def resolve_strategy(strategy: StrategyLike) -> CrossModalStrategy:
    """A strategy from its name (``"full"``, ``"temporal"``, ``"strided"``, ``"random"``,
    with default arguments), an instance, or an edge function."""
    if isinstance(strategy, CrossModalStrategy):
        return strategy
    if isinstance(strategy, str):
        if STRATEGIES.get(strategy) is CallableStrategy:
            raise ValueError(f"The strategy {strategy!r} needs its function: pass the function itself, or "
                             f"CallableStrategy(fn) with fn registered by graphfuse.data.register_function")
        return STRATEGIES.get(strategy)()
    if callable(strategy):
        return CallableStrategy(strategy)
    raise TypeError(f"Cannot use {strategy!r} as a cross-modal strategy; pass a name, a CrossModalStrategy "
                    f"or a function (src, dst) -> edge_index")


@dataclass
class CrossEdges:
    """Cross-modal edges between two node types, in both directions.

    Adds the relations ``(src, relation, dst)`` and ``(dst, relation, src)``; the reverse
    direction applies ``strategy`` with the roles swapped.

    Args:
        src (str): one node type.
        dst (str): the other node type.
        strategy (str, CrossModalStrategy or callable, optional): see :func:`resolve_strategy`.
            (default: :obj:`"full"`)
        relation (str, optional): relation name. (default: :obj:`"to"`)
    """

    src: str
    dst: str
    strategy: Any = "full"
    relation: str = "to"

    def __post_init__(self) -> None:
        for field in ("src", "dst", "relation"):
            check_str(getattr(self, field), f"CrossEdges '{field}'")
        if self.src == self.dst:
            raise ValueError(f"CrossEdges joins two different node types, got '{self.src}' twice; "
                             f"intra-modal edges come from the modality's own edge rule")
        self.strategy = resolve_strategy(self.strategy)

    def get_config(self) -> dict[str, Any]:
        where = f"CrossEdges({self.src!r}, {self.dst!r}, relation={self.relation!r})"
        return {"kind": "edges", "src": self.src, "dst": self.dst, "relation": self.relation,
                "strategy": strategy_config(self.strategy, where)}


@dataclass
class VirtualNodes:
    """Virtual fusion node(s) joined, both ways, to every node of every modality of a sample.

    Adds the node type ``node_type`` with ``count`` nodes per sample (``x`` holds their index
    ``0..count-1`` so a model can learn an embedding per virtual node) and the relations
    ``(m, relation, node_type)`` and ``(node_type, relation, m)`` for each modality ``m``
    (all of the builder's, or those listed in ``modalities``).
    """

    count: int = 1
    node_type: str = "virtual"
    relation: str = "to"
    modalities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_int(self.count, "VirtualNodes 'count'")
        check_str(self.node_type, "VirtualNodes 'node_type'")
        check_str(self.relation, "VirtualNodes 'relation'")
        if self.modalities is not None:
            self.modalities = check_names(self.modalities, "VirtualNodes 'modalities'")

    def get_config(self) -> dict[str, Any]:
        return {"kind": "virtual", "count": self.count, "node_type": self.node_type, "relation": self.relation,
                "modalities": None if self.modalities is None else list(self.modalities)}


def cross_from_config(config: Mapping[str, Any]) -> CrossEdges | VirtualNodes:
    """The :class:`CrossEdges` or :class:`VirtualNodes` of its ``get_config()``."""
    if not isinstance(config, Mapping) or config.get("kind") not in ("edges", "virtual"):
        raise ValueError(f"A cross-modal entry's config has 'kind' 'edges' or 'virtual', got {config!r}")
    fields = {key: value for key, value in config.items() if key != "kind"}
    if config["kind"] == "virtual":
        return VirtualNodes(**fields)
    return CrossEdges(**{**fields, "strategy": strategy_from_config(fields.get("strategy"))})
