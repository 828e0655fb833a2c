"""Conversion of heterogeneous graphs to and from networkx and DGL.

All four conversions pass through one plain form: per node type its node count and node-level
tensors, per edge type its ``edge_index`` and edge-level tensors. A tensor is node-level when
its first dimension has one entry per node (``x``, ``pos``, ``time``, a batch's ``batch``; not
its ``ptr``), edge-level when it has one entry per edge. Graph-level attributes are not carried.

Why not ``torch_geometric.utils``: its ``to_networkx`` numbers nodes globally and has no
heterogeneous inverse (``from_networkx`` is homogeneous), and its DGL pair (2.8) loses what these
graphs rely on: ``to_dgl`` builds the heterograph without node counts (a modality absent from a
sample, or nodes without edges, vanish) and copies a batch's ``ptr`` as node data; ``from_dgl``
drops the node count of a type without features and stores edge data schemes, not tensors. Where a
later torch-geometric does the same as these, they should delegate to it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import torch
from torch import Tensor
from torch_geometric.data import Data, HeteroData

from graphfuse.checks import check_edge_index
from graphfuse.typing import EdgeType, import_dgl

SCHEMA = "schema"
"""Key of ``G.graph`` under which :func:`to_networkx` records node types, edge types and attributes."""
NODE_TYPE = "type"
"""networkx node attribute holding the node type."""
RELATION = "relation"
"""networkx edge attribute holding the edge type (or just the relation name, in hand-built graphs)."""
EDGE_ID = "id"
"""networkx edge attribute holding an edge's position among the edges of its type."""
DEFAULT_RELATION = "to"
"""Relation name of hand-built networkx edges that have no :data:`RELATION` attribute."""

# node type -> (number of nodes, node-level tensors); edge type -> (edge_index, edge-level tensors).
NodeParts = dict[str, tuple[int, dict[str, Tensor]]]
EdgeParts = dict[EdgeType, tuple[Tensor, dict[str, Tensor]]]
# attribute -> (dtype, shape of one row)
AttributeSchema = Mapping[str, tuple[torch.dtype, tuple[int, ...]]]


def to_networkx(data: HeteroData) -> nx.MultiDiGraph:
    r"""Converts a heterogeneous graph to a :class:`networkx.MultiDiGraph`, one networkx node
    per graph node and one networkx edge per graph edge.

    Node keys are ``(node_type, index)``. Each node has the attribute ``type`` (its node type)
    and, for every node-level tensor of its node store, its row of that tensor (a tensor, so
    dtypes survive). Each edge has the attribute ``relation`` (its edge type tuple), ``id``
    (its position in the ``edge_index`` of its type) and its rows of the edge-level tensors.
    ``G.graph["schema"]`` records the node types and edge types in order, with the dtype and
    row shape of every attribute, so that :func:`from_networkx` restores types without nodes
    or edges exactly. Rows are copies: changing them leaves :obj:`data` as it is.

    Args:
        data (torch_geometric.data.HeteroData): a graph or a batch of graphs, e.g. from
            :meth:`GraphBuilder.build` or :meth:`GraphBuilder.collate`.

    Returns:
        networkx.MultiDiGraph: the graph, with :func:`from_networkx` as its inverse.

    Example:
        >>> data = builder.build({"text": "a red square", "image": image})
        >>> G = to_networkx(data)
        >>> G.nodes["text", 2]["type"], G.nodes["text", 2]["pos"]
        ('text', tensor(2))
        >>> G.number_of_edges() == data.num_edges
        True
        >>> back = from_networkx(G)  # the same HeteroData again
    """
    nodes, edges = _parts(data, "to_networkx")
    G = nx.MultiDiGraph()
    G.graph[SCHEMA] = {
        "node_types": {node_type: _schema(tensors) for node_type, (_, tensors) in nodes.items()},
        "edge_types": {edge_type: _schema(tensors) for edge_type, (_, tensors) in edges.items()},
    }
    for node_type, (num_nodes, tensors) in nodes.items():
        _check_reserved(tensors, (NODE_TYPE,), f"node type '{node_type}'")
        G.add_nodes_from(((node_type, index), {NODE_TYPE: node_type, **row})
                         for index, row in enumerate(_rows(tensors, num_nodes)))
    for edge_type, (edge_index, tensors) in edges.items():
        _check_reserved(tensors, (RELATION, EDGE_ID), f"edge type {edge_type}")
        src, _, dst = edge_type
        pairs = edge_index.t().tolist()
        G.add_edges_from(((src, u), (dst, v), {RELATION: edge_type, EDGE_ID: index, **row})
                         for index, ((u, v), row) in enumerate(zip(pairs, _rows(tensors, len(pairs)), strict=True)))
    return G


def from_networkx(G: nx.DiGraph) -> HeteroData:
    r"""Converts a directed networkx graph to a heterogeneous graph: the inverse of
    :func:`to_networkx`, and the way to build a custom graph by hand.

    Every node needs the attribute ``type``, its node type. The nodes of a type are numbered
    in insertion order, and each of their other attributes (tensors, lists or numbers) is
    stacked into one node-level tensor, so it must be set on all the nodes of the type or on
    none. An edge's ``relation`` is an edge type tuple or a relation name ``rel`` (the edge
    type is then ``(type(u), rel, type(v))``) and defaults to ``"to"``; its other attributes
    become edge-level tensors. Edges with an ``id`` attribute are put in ``id`` order, the
    others in networkx's order. ``G.graph["schema"]``, where :func:`to_networkx` left one,
    restores the order of the types, those without nodes or edges, and the attribute dtypes.

    Args:
        G (networkx.DiGraph): a directed graph (a :class:`networkx.MultiDiGraph` too).

    Returns:
        torch_geometric.data.HeteroData: the graph.

    Example:
        >>> G = nx.DiGraph()
        >>> G.add_node("age", type="field", x=[0.3, 1.0])
        >>> G.add_node("income", type="field", x=[0.7, 0.0])
        >>> G.add_node("row", type="record", x=[1.0, 1.0])
        >>> G.add_edge("age", "row", relation="in")
        >>> G.add_edge("income", "row", relation="in")
        >>> data = from_networkx(G)
        >>> data["field"].x.shape, data["field", "in", "record"].edge_index.tolist()
        (torch.Size([2, 2]), [[0, 1], [0, 0]])
    """
    if not isinstance(G, nx.DiGraph):
        hint = ("its edges have no direction: call G.to_directed() to keep both directions of each"
                if isinstance(G, nx.Graph) else "build one with networkx or to_networkx()")
        raise TypeError(f"from_networkx expects a directed networkx graph (DiGraph or MultiDiGraph), got "
                        f"{type(G).__name__}; {hint}")
    node_schema, edge_schema = _read_schema(G)
    where: dict[Any, tuple[str, int]] = {}  # networkx node -> (node type, index among its type)
    node_rows: dict[str, list[dict[str, Any]]] = {node_type: [] for node_type in node_schema}
    for node, attributes in G.nodes(data=True):
        node_type = attributes.get(NODE_TYPE)
        if not isinstance(node_type, str):
            raise ValueError(f"from_networkx needs a node type on every node, but node {node!r} has "
                             f"'{NODE_TYPE}'={node_type!r}; set it, e.g. G.add_node({node!r}, {NODE_TYPE}='field')")
        rows = node_rows.setdefault(node_type, [])
        where[node] = (node_type, len(rows))
        rows.append({name: value for name, value in attributes.items() if name != NODE_TYPE})
    edge_rows: dict[EdgeType, list[dict[str, Any]]] = {edge_type: [] for edge_type in edge_schema}
    edge_ends: dict[EdgeType, list[tuple[int, int]]] = {edge_type: [] for edge_type in edge_schema}
    for u, v, attributes in G.edges(data=True):
        edge_type = _edge_type(u, v, attributes.get(RELATION, DEFAULT_RELATION), where)
        edge_rows.setdefault(edge_type, []).append({name: value for name, value in attributes.items()
                                                    if name != RELATION})
        edge_ends.setdefault(edge_type, []).append((where[u][1], where[v][1]))
    nodes = {node_type: (len(rows), _stack_rows(rows, node_schema.get(node_type, {}), f"nodes of type '{node_type}'"))
             for node_type, rows in node_rows.items()}
    edges = {}
    for edge_type, rows in edge_rows.items():
        edge_index = torch.tensor(edge_ends[edge_type], dtype=torch.long).reshape(-1, 2).t().contiguous()
        edges[edge_type] = _in_id_order(edge_index, _stack_rows(rows, edge_schema.get(edge_type, {}),
                                                                f"edges of type {edge_type}"))
    return _hetero_data(nodes, edges)


def to_dgl(data: HeteroData) -> Any:
    r"""Converts a heterogeneous graph to a DGL heterograph (needs the ``dgl`` extra).

    Every node type becomes a DGL node type with as many nodes (types without nodes too), its
    node-level tensors in ``g.nodes[node_type].data``; every edge type a canonical DGL edge
    type, its edges in ``edge_index`` order and its edge-level tensors in
    ``g.edges[edge_type].data``. Tensors are shared, not copied. DGL keeps node and edge types
    in its own (sorted) order.

    Args:
        data (torch_geometric.data.HeteroData): the graph (or batch) to convert, with an
            ``edge_index`` on each of its edge types, at least one.

    Returns:
        dgl.DGLGraph: the heterograph, with :func:`from_dgl` as its inverse.

    Example:
        >>> batch = builder.collate(samples)
        >>> g = to_dgl(batch)
        >>> torch.equal(g.nodes["image"].data["x"], batch["image"].x)
        True
        >>> g.num_edges(("text", "to", "image")) == batch["text", "to", "image"].num_edges
        True
    """
    nodes, edges = _parts(data, "to_dgl")
    dgl = import_dgl()
    if not edges:
        raise ValueError("to_dgl needs at least one edge type (DGL heterographs are made of relations); the "
                         "graph has only node types. Add an edge type, e.g. data['a', 'to', 'a'].edge_index = "
                         "torch.empty(2, 0, dtype=torch.long)")
    g = dgl.heterograph({edge_type: (edge_index[0], edge_index[1]) for edge_type, (edge_index, _) in edges.items()},
                        num_nodes_dict={node_type: num_nodes for node_type, (num_nodes, _) in nodes.items()})
    for node_type, (_, tensors) in nodes.items():
        g.nodes[node_type].data.update(tensors)
    for edge_type, (_, tensors) in edges.items():
        g.edges[edge_type].data.update(tensors)
    return g


def from_dgl(g: Any) -> HeteroData:
    r"""Converts a DGL graph (a heterograph or a homogeneous graph) to a heterogeneous graph:
    the inverse of :func:`to_dgl` (needs the ``dgl`` extra).

    Node and edge types come in DGL's order, edges in edge-id order; node and edge data become
    node- and edge-level tensors (shared, not copied). A node type without data keeps its node
    count as ``num_nodes``.

    Args:
        g (dgl.DGLGraph): the graph.

    Returns:
        torch_geometric.data.HeteroData: the graph.

    Example:
        >>> g = dgl.heterograph({("user", "follows", "user"): ([0, 1], [1, 2])})
        >>> from_dgl(g)["user", "follows", "user"].edge_index.tolist()
        [[0, 1], [1, 2]]
    """
    dgl = import_dgl()
    if not isinstance(g, dgl.DGLGraph):
        raise TypeError(f"from_dgl expects a dgl.DGLGraph, got {type(g).__name__}; for a networkx graph use "
                        f"from_networkx")
    nodes = {node_type: (g.num_nodes(node_type), dict(g.nodes[node_type].data)) for node_type in g.ntypes}
    edges = {edge_type: (torch.stack(g.edges(etype=edge_type, order="eid")).long(), dict(g.edges[edge_type].data))
             for edge_type in g.canonical_etypes}
    return _hetero_data(nodes, edges)


def _parts(data: HeteroData, caller: str) -> tuple[NodeParts, EdgeParts]:
    """The node and edge tensors of ``data``, checked: each edge type needs a valid ``edge_index``."""
    if not isinstance(data, HeteroData):
        hint = ("convert it with data.to_heterogeneous()" if isinstance(data, Data)
                else "build one with GraphBuilder.build() or GraphBuilder.collate()")
        raise TypeError(f"{caller} expects a torch_geometric HeteroData, got {type(data).__name__}; {hint}")
    nodes: NodeParts = {}
    for node_type in data.node_types:
        store = data[node_type]
        num_nodes = store.num_nodes
        if num_nodes is None:
            raise ValueError(f"{caller} cannot tell how many nodes of type '{node_type}' there are; set "
                             f"data['{node_type}'].num_nodes")
        nodes[node_type] = (num_nodes, _level_tensors(store, num_nodes, skip="ptr"))
    edges: EdgeParts = {}
    for edge_type in data.edge_types:
        store = data[edge_type]
        for node_type in (edge_type[0], edge_type[2]):
            if node_type not in nodes:
                raise ValueError(f"{caller}: edge type {edge_type} names node type '{node_type}', which the graph "
                                 f"lacks; set data['{node_type}'].x or data['{node_type}'].num_nodes")
        if "edge_index" not in store:
            raise ValueError(f"{caller} needs 'edge_index' on every edge type, but {edge_type} has none (has "
                             f"{list(store.keys())}); set data{list(edge_type)}.edge_index as a [2, num_edges] "
                             f"tensor")
        edge_index = store.edge_index
        check_edge_index(edge_index, nodes[edge_type[0]][0], nodes[edge_type[2]][0], f"edge_index of {edge_type}")
        edges[edge_type] = (edge_index, _level_tensors(store, edge_index.size(1), skip="edge_index"))
    return nodes, edges


def _level_tensors(store: Mapping[str, Any], count: int, skip: str) -> dict[str, Tensor]:
    """The tensors of ``store`` with one row per node / edge (``count`` rows), but ``skip``."""
    return {name: value for name, value in store.items()
            if name != skip and isinstance(value, Tensor) and value.dim() > 0 and value.size(0) == count}


def _hetero_data(nodes: NodeParts, edges: EdgeParts) -> HeteroData:
    data = HeteroData()
    for node_type, (num_nodes, tensors) in nodes.items():
        store = data[node_type]
        for name, value in tensors.items():
            store[name] = value
        if not tensors:
            store.num_nodes = num_nodes
    for edge_type, (edge_index, tensors) in edges.items():
        store = data[edge_type]
        store.edge_index = edge_index
        for name, value in tensors.items():
            store[name] = value
    return data


def _schema(tensors: Mapping[str, Tensor]) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    return {name: (value.dtype, tuple(value.shape[1:])) for name, value in tensors.items()}


def _check_reserved(tensors: Mapping[str, Tensor], reserved: Sequence[str], owner: str) -> None:
    for name in reserved:
        if name in tensors:
            raise ValueError(f"to_networkx cannot carry the attribute '{name}' of {owner}: networkx attribute "
                             f"'{name}' is reserved for the conversion; rename the attribute")


def _rows(tensors: Mapping[str, Tensor], count: int) -> list[dict[str, Tensor]]:
    """Per node / edge, its row of each tensor (copied, so the rows do not alias ``tensors``)."""
    columns = {name: value.detach().clone().unbind(0) for name, value in tensors.items()}
    return [{name: column[index] for name, column in columns.items()} for index in range(count)]


def _read_schema(G: nx.DiGraph) -> tuple[Mapping[str, AttributeSchema], Mapping[EdgeType, AttributeSchema]]:
    schema = G.graph.get(SCHEMA)
    if schema is None:
        return {}, {}
    if not (isinstance(schema, Mapping) and isinstance(schema.get("node_types"), Mapping)
            and isinstance(schema.get("edge_types"), Mapping)):
        raise ValueError(f"G.graph['{SCHEMA}'] must be the mapping to_networkx writes (with 'node_types' and "
                         f"'edge_types'), got {schema!r}; delete it from a hand-built graph")
    return schema["node_types"], schema["edge_types"]


def _edge_type(u: Any, v: Any, relation: Any, where: Mapping[Any, tuple[str, int]]) -> EdgeType:
    """The edge type of the networkx edge ``u -> v`` from its ``relation`` attribute."""
    src, dst = where[u][0], where[v][0]
    if isinstance(relation, str):
        return src, relation, dst
    if isinstance(relation, (tuple, list)) and len(relation) == 3 and all(isinstance(part, str) for part in relation):
        if (relation[0], relation[2]) != (src, dst):
            raise ValueError(f"Edge {u!r} -> {v!r} has {RELATION} {tuple(relation)}, but joins a '{src}' node to a "
                             f"'{dst}' node; set {RELATION}=('{src}', '{relation[1]}', '{dst}') or just "
                             f"{RELATION}='{relation[1]}'")
        return src, relation[1], dst
    raise TypeError(f"Edge {u!r} -> {v!r} has {RELATION}={relation!r}; expected a relation name such as "
                    f"'{DEFAULT_RELATION}' or a (source type, relation, destination type) tuple of strings")


def _stack_rows(rows: Sequence[Mapping[str, Any]], schema: AttributeSchema, owner: str) -> dict[str, Tensor]:
    """Stacks each attribute of ``rows`` (the nodes / edges of one type, named by ``owner``) into a tensor;
    ``schema`` gives dtypes, and the shapes of attributes when there are no rows."""
    tensors = {}
    for name in dict.fromkeys([*schema, *(name for row in rows for name in row)]):
        values = [row[name] for row in rows if name in row]
        dtype, shape = schema.get(name, (None, ()))
        if not rows and name in schema:
            tensors[name] = torch.empty(0, *shape, dtype=dtype)
        elif values and len(values) < len(rows):
            raise ValueError(f"'{name}' is set on {len(values)} of the {len(rows)} {owner}; set it on all of them "
                             f"or on none")
        elif values:
            tensors[name] = _stack(values, dtype, f"'{name}' of the {owner}")
    return tensors


def _stack(values: Sequence[Any], dtype: torch.dtype | None, what: str) -> Tensor:
    try:
        rows = [torch.as_tensor(value, dtype=dtype) for value in values]
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"Cannot make {what} into tensors ({error}); give numbers, lists of numbers or "
                        f"tensors") from None
    try:
        return torch.stack(rows)
    except RuntimeError:
        shapes = sorted({tuple(row.shape) for row in rows})
        raise ValueError(f"Cannot stack {what} into one tensor: their shapes differ ({shapes}); give each the "
                         f"same shape") from None


def _in_id_order(edge_index: Tensor, tensors: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Sorts edges by their ``id`` attribute, where they have one, and drops it."""
    ids = tensors.pop(EDGE_ID, None)
    if ids is None:
        return edge_index, tensors
    if ids.dim() != 1:
        raise ValueError(f"Edge attribute '{EDGE_ID}' must be one number per edge (the edge's position), got rows "
                         f"of shape {tuple(ids.shape[1:])}")
    order = torch.argsort(ids, stable=True)
    return edge_index[:, order], {name: value[order] for name, value in tensors.items()}
