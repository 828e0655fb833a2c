"""The graph builder: a sample's modalities -> one heterogeneous graph; many samples -> one batch."""
from __future__ import annotations

import copy
import itertools
import json
import operator
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, HeteroData

from graphfuse.checkpoint import REBUILD_ERRORS, CheckpointError, read_json
from graphfuse.checks import check_int, check_str
from graphfuse.config import check_json, short_repr
from graphfuse.data.cache import TemplateCache
from graphfuse.data.collate import Collater
from graphfuse.data.cross import CrossEdges, VirtualNodes, cross_from_config
from graphfuse.data.modalities.base import Modality, create_modality, modality_config, modality_from_config
from graphfuse.data.nodes import NODE_ATTRIBUTES, NodeSet, NodeSpec
from graphfuse.data.schema import GraphSchema, Relation
from graphfuse.io import atomic_write_text
from graphfuse.typing import EdgeType

CrossSpec = CrossEdges | VirtualNodes | tuple[Any, ...]
_NO_EDGES = torch.empty(2, 0, dtype=torch.long)
BUILDER_FORMAT = "graphfuse-builder"
BUILDER_VERSION = 1
BUILDER_FILE = "builder.json"


class GraphBuilder:
    r"""Turns multimodal samples into PyG heterogeneous graphs.

    A sample is a mapping from modality name to its raw input (``{"text": "a cat",
    "image": tensor, "audio": waveform}``), or to an already featurised :class:`NodeSet`.
    Any modality may be absent (left out, or ``None``): every graph still holds every node
    type and relation of the builder, with zero nodes and edges where a modality is missing,
    so all graphs share one schema (:meth:`metadata`).

    Args:
        modalities (Mapping[str, Modality or str]): node type -> featurizer (or the name of a
            registered modality, created with default arguments).
        cross (str or Sequence, optional): the cross-modal edges: ``"full"`` joins every pair
            of modalities completely; otherwise a list of :class:`CrossEdges`,
            ``(src, dst, strategy)`` tuples and :class:`VirtualNodes`. (default: :obj:`()`)
        max_edges_per_sample (int, optional): largest edge count of one sample graph; a
            larger graph raises an error naming the relation to make sparser. ``None`` for no
            cap. (default: :obj:`1_000_000`)
        template_cache_bytes (int, optional): memory for edge templates cached per shape.
            (default: 256 MiB)
        extra_keys (str or Collection[str], optional): what a sample key that is no modality
            means (an ``id``, metadata): ``"error"`` refuses it, ``"ignore"`` drops every such key,
            and a collection of names (``("id", "meta")``) drops those and refuses any other.
            Every path from samples to graphs (:meth:`featurize`, :meth:`build`,
            :meth:`collate`, the Trainer's batches) follows it. (default: :obj:`"error"`)

    Example:
        >>> builder = GraphBuilder({"text": TextModality(tokenizer), "image": ImageModality()},
        ...                        cross="full")
        >>> graph = builder.build({"text": "a red square", "image": image})
        >>> batch = builder.collate([sample_1, sample_2])  # == Batch.from_data_list([...])

    A builder is saved as JSON data and asset files (:meth:`get_config`, :meth:`save_assets`,
    :meth:`from_config`; or :meth:`save` and :meth:`load` of a folder): every modality and strategy
    by its registered name and settings, user functions by the name they are registered under
    (:func:`~graphfuse.data.register_function`), never as a pickle.
    """

    def __init__(self, modalities: Mapping[str, Modality | str], cross: str | Sequence[CrossSpec] = (),
                 max_edges_per_sample: int | None = 1_000_000, template_cache_bytes: int = 256 << 20,
                 extra_keys: str | Collection[str] = "error") -> None:
        if not isinstance(modalities, Mapping) or not modalities:
            raise ValueError("GraphBuilder needs at least one modality, e.g. {'text': TextModality(tokenizer)}")
        self.extra_keys = _extra_keys(extra_keys, modalities)
        if max_edges_per_sample is not None:
            check_int(max_edges_per_sample, "GraphBuilder 'max_edges_per_sample' (or None, no cap)")
        check_int(template_cache_bytes, "GraphBuilder 'template_cache_bytes'", 0)
        self.modalities: dict[str, Modality] = {key: self._named(key, modality) for key, modality in modalities.items()}
        self.max_edges_per_sample = max_edges_per_sample
        self.virtual_nodes: dict[str, int] = {}
        self.relations: list[Relation] = [
            Relation((key, modality.relation, key)) for key, modality in self.modalities.items() if modality.relation
        ]
        self.cross: list[CrossEdges | VirtualNodes] = self._cross_specs(cross)
        for spec in self.cross:
            self._add_cross(spec)
        self.node_types: list[str] = [*self.modalities, *self.virtual_nodes]
        self.empty_node_sets: dict[str, NodeSet] = {
            **{node_type: modality.empty() for node_type, modality in self.modalities.items()},
            **{node_type: NodeSet.empty(dtype=torch.long) for node_type in self.virtual_nodes},
        }
        self._layouts = {node_type: _layout(nodes) for node_type, nodes in self.empty_node_sets.items()}
        self._conforming_modalities = {key for key, modality in self.modalities.items()
                                       if modality.conforms_to_empty()}
        # Virtual nodes are the same in every sample; these serve the edge strategies, read-only.
        self._virtual_node_sets = {node_type: NodeSet(x=torch.arange(count), edge_index=_NO_EDGES)
                                   for node_type, count in self.virtual_nodes.items()}
        self._check_relations()
        self._templates = TemplateCache(template_cache_bytes)
        self.collater = Collater(self)

    @staticmethod
    def _named(key: str, modality: Modality | str) -> Modality:
        check_str(key, "GraphBuilder modality name (a key of 'modalities')")
        if isinstance(modality, str):
            modality = create_modality(modality)
        if not isinstance(modality, Modality):
            raise TypeError(f"GraphBuilder modality '{key}' must be a Modality or a registered modality name, "
                            f"got {type(modality).__name__}")
        if modality.name != key:
            modality = copy.copy(modality)
            modality.name = key
        return modality

    def _cross_specs(self, cross: str | Sequence[CrossSpec]) -> list[CrossEdges | VirtualNodes]:
        if isinstance(cross, str):
            if cross != "full":
                raise ValueError(f"GraphBuilder 'cross' as a string must be 'full', got {cross!r}; pass a list "
                                 f"of CrossEdges for other strategies")
            return [CrossEdges(a, b) for a, b in itertools.combinations(self.modalities, 2)]
        if isinstance(cross, (CrossEdges, VirtualNodes)):
            raise TypeError(f"GraphBuilder 'cross' received a single {type(cross).__name__}; pass a list of cross-edge "
                            f"specs: cross=[{type(cross).__name__}(...)]")
        if isinstance(cross, tuple) and cross and isinstance(cross[0], str):  # one (src, dst, strategy) tuple
            raise TypeError(f"GraphBuilder 'cross' received the tuple {short_repr(cross)}, a single cross-edge spec; "
                            f"pass a list of cross-edge specs: cross=[{short_repr(cross)}]")
        if not isinstance(cross, Iterable):
            raise TypeError(f"GraphBuilder 'cross' must be 'full' or a list of cross-edge specs (CrossEdges, "
                            f"(src, dst, strategy) tuples, VirtualNodes), got {type(cross).__name__} "
                            f"{short_repr(cross)}")
        specs = []
        for spec in cross:
            if isinstance(spec, tuple):
                spec = CrossEdges(*spec)
            if not isinstance(spec, (CrossEdges, VirtualNodes)):
                raise TypeError(f"GraphBuilder 'cross' entries must be CrossEdges, (src, dst, strategy) tuples or "
                                f"VirtualNodes, got {spec!r}")
            specs.append(spec)
        return specs

    def _add_cross(self, spec: CrossEdges | VirtualNodes) -> None:
        if isinstance(spec, VirtualNodes):
            if spec.node_type in self.modalities or spec.node_type in self.virtual_nodes:
                raise ValueError(f"VirtualNodes node_type '{spec.node_type}' is already a node type; choose another")
            targets = list(self.modalities) if spec.modalities is None else list(spec.modalities)
            self.virtual_nodes[spec.node_type] = spec.count
            for modality in targets:
                self._add_cross(CrossEdges(modality, spec.node_type, "full", spec.relation))
            return
        for node_type in (spec.src, spec.dst):
            if node_type not in self.modalities and node_type not in self.virtual_nodes:
                raise ValueError(f"CrossEdges names node type '{node_type}', which is not among the builder's "
                                 f"modalities {list(self.modalities)}")
        self.relations.append(Relation((spec.src, spec.relation, spec.dst), spec.strategy))
        self.relations.append(Relation((spec.dst, spec.relation, spec.src), spec.strategy))

    def _check_relations(self) -> None:
        seen = set()
        for relation in self.relations:
            if relation.edge_type in seen:
                raise ValueError(f"Relation {relation.edge_type} is defined twice; give one of the CrossEdges a "
                                 f"different relation name, e.g. CrossEdges(..., relation='aligned')")
            seen.add(relation.edge_type)
            for attribute in relation.strategy.requires if relation.strategy else ():
                for node_type in (relation.edge_type[0], relation.edge_type[2]):
                    if getattr(self.empty_node_sets[node_type], attribute) is None:
                        raise ValueError(
                            f"{relation.strategy!r} on {relation.edge_type} needs '{attribute}' on every node, but "
                            f"modality '{node_type}' has none (for text, create TextModality(..., spans=True))")

    def schema(self) -> GraphSchema:
        """The node types with what their nodes carry, and the edge types: what a model is built from."""
        specs = {node_type: modality.node_spec() for node_type, modality in self.modalities.items()}
        specs.update({node_type: NodeSpec("virtual", integer=True, num_embeddings=count)
                      for node_type, count in self.virtual_nodes.items()})
        nodes = tuple((node_type, specs[node_type]) for node_type in self.node_types)
        return GraphSchema(nodes, tuple(relation.edge_type for relation in self.relations))

    def metadata(self) -> tuple[list[str], list[EdgeType]]:
        """Node types and edge types of every graph this builder makes (as ``HeteroData.metadata()``)."""
        return list(self.node_types), [relation.edge_type for relation in self.relations]

    def featurize(self, sample: Mapping[str, Any]) -> dict[str, NodeSet]:
        """Raw inputs (or node sets) per modality -> node sets of the modalities present."""
        return self.featurize_many([sample])[0]

    def featurize_many(self, samples: Sequence[Mapping[str, Any]]) -> list[dict[str, NodeSet]]:
        """:meth:`featurize` of many samples, each modality featurising its inputs together
        (:meth:`Modality.featurize_many <graphfuse.data.modalities.Modality.featurize_many>`): one
        short-time Fourier transform for the clips, one patch cut per image size, one vocabulary
        look-up for the texts, one pretrained encoder call per batch, rather than one of each per
        sample. :meth:`collate` and the Trainer's ``DataLoader`` workers featurise this way."""
        pending: dict[str, list[tuple[int, Any]]] = {}
        nodes: list[dict[str, NodeSet]] = [{} for _ in samples]
        for index, sample in enumerate(samples):
            if not isinstance(sample, Mapping):
                raise TypeError(f"A sample must be a mapping from modality name to input, e.g. {{'text': ..., "
                                f"'image': ...}}; got {type(sample).__name__}")
            for key, raw in sample.items():
                if key not in self.modalities:
                    self._check_extra_key(key)
                    continue
                if isinstance(raw, NodeSet):  # given by the caller: checked once, here, not in the model
                    nodes[index][key] = raw if raw.validated else raw.validate(key)  # (its fit: at batching)
                elif raw is not None:
                    pending.setdefault(key, []).append((index, raw))
        for key, items in pending.items():
            featurized = self.modalities[key].featurize_many([raw for _, raw in items])
            checked = key not in self._conforming_modalities  # the built-in modalities: validated, conforming as made
            for (index, _), node_set in zip(items, featurized, strict=True):
                nodes[index][key] = (self._conforming(key, node_set if node_set.validated else node_set.validate(key))
                                     if checked else node_set)
        for sample_nodes in nodes:
            if not sample_nodes:
                raise ValueError(f"Sample has none of the modalities {list(self.modalities)}; every sample needs at "
                                 f"least one")
        return [{key: sample_nodes[key] for key in sample if key in sample_nodes}
                for sample, sample_nodes in zip(samples, nodes, strict=True)]

    def _check_extra_key(self, key: str) -> None:
        """Passes a sample key that is no modality when ``extra_keys`` ignores it, else raises."""
        if self.extra_keys == "ignore" or (not isinstance(self.extra_keys, str) and key in self.extra_keys):
            return
        ignored = "" if isinstance(self.extra_keys, str) else f" (it ignores {list(self.extra_keys)})"
        raise ValueError(f"Sample has unknown modality '{key}'; this GraphBuilder knows "
                         f"{list(self.modalities)}{ignored}. Add it to 'modalities', drop it from the sample, "
                         f"or let the builder ignore keys that are no modality: "
                         f"GraphBuilder(..., extra_keys='ignore') or extra_keys=({key!r}, ...)")

    def _conforming(self, node_type: str, nodes: NodeSet) -> NodeSet:
        if _layout(nodes) == self._layouts[node_type]:  # the common case, in one comparison
            return nodes
        reference = self.empty_node_sets[node_type]
        for attribute in NODE_ATTRIBUTES:
            value, expected = getattr(nodes, attribute), getattr(reference, attribute)
            if (value is None) != (expected is None) or (value is not None and (
                    value.dtype != expected.dtype or value.shape[1:] != expected.shape[1:])):
                raise ValueError(
                    f"Modality '{node_type}' produced '{attribute}' as {_describe(value)}, unlike its empty() "
                    f"node set ({_describe(expected)}); featurize() and empty() must agree")
        return nodes

    def node_sets(self, sample: Mapping[str, Any]) -> Mapping[str, NodeSet]:
        """The node sets of a sample: :meth:`featurize` of raw inputs, while a plain dict of validated
        node sets (what :meth:`featurize` returns) passes straight through, unchecked again (this
        runs per sample, every epoch); node sets made elsewhere are validated first, once."""
        return sample if self._featurized(sample) else self.featurize(sample)

    def node_sets_many(self, samples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, NodeSet]]:
        """:meth:`node_sets` of many samples, the raw ones featurised together (:meth:`featurize_many`)."""
        node_sets: list[Mapping[str, NodeSet] | None] = [sample if self._featurized(sample) else None
                                                         for sample in samples]
        todo = [index for index, nodes in enumerate(node_sets) if nodes is None]
        if todo:
            for index, nodes in zip(todo, self.featurize_many([samples[index] for index in todo]), strict=True):
                node_sets[index] = nodes
        return node_sets

    def _featurized(self, sample: Any) -> bool:
        return (isinstance(sample, dict) and bool(sample) and sample.keys() <= self.modalities.keys()
                and all(isinstance(value, NodeSet) and value.validated for value in sample.values()))

    def relation_edges(self, relation: Relation, nodes: Mapping[str, NodeSet]) -> Tensor:
        """Local edges of ``relation`` in one sample; shape-only templates are shared, not copied."""
        src, _, dst = relation.edge_type
        src_nodes = nodes.get(src, self._virtual_node_sets.get(src))
        if relation.strategy is None:
            return _NO_EDGES if src_nodes is None else src_nodes.edge_index
        dst_nodes = nodes.get(dst, self._virtual_node_sets.get(dst))
        if src_nodes is None or dst_nodes is None:
            return _NO_EDGES
        strategy = relation.strategy
        if not strategy.shape_only:
            edge_index = strategy.edges(src_nodes, dst_nodes)
            self.check_edge_count(relation, edge_index.size(1), edge_index.size(1))
            return edge_index
        key = (relation.edge_type, src_nodes.num_nodes, dst_nodes.num_nodes)
        template = self._templates.get(key)
        if template is None:
            bound = strategy.max_edges(src_nodes.num_nodes, dst_nodes.num_nodes)
            if bound is not None:
                self.check_edge_count(relation, bound, bound)
            template = self._templates.put(key, strategy.edges(src_nodes, dst_nodes))
        return template

    def check_edge_count(self, relation: Relation, count: int, total: int) -> None:
        """Raises when a sample graph would exceed ``max_edges_per_sample``."""
        cap = self.max_edges_per_sample
        if cap is None or total <= cap:
            return
        src, _, dst = relation.edge_type
        advice = (f"make it sparser, e.g. CrossEdges('{src}', '{dst}', StridedBipartite(budget=8)) or "
                  f"RandomBipartite(budget=8)" if relation.strategy is not None else
                  "shorten the input or lower the modality's window")
        raise ValueError(
            f"A sample graph would have {total} edges, over max_edges_per_sample={cap}: relation {relation.edge_type} "
            f"has {count} of them. To fix it, {advice}, or raise max_edges_per_sample")

    def build(self, sample: Mapping[str, Any]) -> HeteroData:
        """One sample -> one :class:`~torch_geometric.data.HeteroData`."""
        return self.collater.sample_graph(self.node_sets(sample))

    __call__ = build

    def collate(self, samples: Sequence[Mapping[str, Any]]) -> Batch:
        """Many samples -> one batched graph, equal to ``Batch.from_data_list([build(s) for s in samples])``
        but built with a few vectorised tensor operations per node and edge type (raw samples are
        featurised together, :meth:`featurize_many`).
        Usable as a ``DataLoader``'s ``collate_fn``."""
        if isinstance(samples, Mapping) or not isinstance(samples, Sequence):
            raise TypeError(f"collate expects a list of samples, got {type(samples).__name__}")
        if len(samples) == 0:
            raise ValueError("collate received an empty list of samples; a batch needs at least one sample")
        return self.collater(self.node_sets_many(samples))

    # Saving and loading -------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The builder as plain JSON data: ``{"format", "version", "modalities": {node type:
        {"type", "config"}}, "cross": [...], "max_edges_per_sample", "template_cache_bytes", "extra_keys"}``.
        A modality or strategy that cannot be saved (an unregistered class or function) raises an
        error naming it and how to register it."""
        return {"format": BUILDER_FORMAT, "version": BUILDER_VERSION,
                "modalities": {key: modality_config(modality) for key, modality in self.modalities.items()},
                "cross": [spec.get_config() for spec in self.cross],
                "max_edges_per_sample": self.max_edges_per_sample, "template_cache_bytes": self._templates.max_bytes,
                "extra_keys": self.extra_keys if isinstance(self.extra_keys, str) else list(self.extra_keys)}

    def save_assets(self, folder: str | os.PathLike) -> None:
        """Writes the files the config refers to (tokenizers, ...) into ``folder``."""
        for modality in self.modalities.values():
            modality.save_assets(Path(folder))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], folder: str | os.PathLike | None = None) -> GraphBuilder:
        """The builder :meth:`get_config` described, its assets read from ``folder``."""
        if not isinstance(config, Mapping) or config.get("format") != BUILDER_FORMAT:
            raise ValueError(f"Not a graphfuse builder config (no \"format\": \"{BUILDER_FORMAT}\")")
        version = config.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"The builder config has no valid 'version' (got {version!r}, expected a whole number "
                             f"from 1); it is damaged")
        if version > BUILDER_VERSION:
            raise ValueError(f"This is a version {version!r} builder config; this graphfuse reads up to version "
                             f"{BUILDER_VERSION}: upgrade graphfuse to load it")
        missing = sorted({"modalities", "cross"} - config.keys())
        if missing or not isinstance(config["modalities"], Mapping) or not isinstance(config["cross"], list):
            raise ValueError(f"The builder config is damaged: it lacks {missing or 'well-formed entries'} "
                             f"('modalities' is a mapping, 'cross' a list)")
        folder = None if folder is None else Path(folder)
        modalities = {key: modality_from_config(entry, folder) for key, entry in config["modalities"].items()}
        options = {key: config[key] for key in ("max_edges_per_sample", "template_cache_bytes", "extra_keys")
                   if key in config}
        return cls(modalities, [cross_from_config(entry) for entry in config["cross"]], **options)

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes ``builder.json`` and the assets into ``folder`` (created if missing); returns its path."""
        config = self.get_config()
        check_json(config, "The builder config")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_assets(folder)
        atomic_write_text(folder / BUILDER_FILE, json.dumps(config, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> GraphBuilder:
        """The builder :meth:`save` wrote into ``folder``; a damaged ``builder.json`` or asset file raises a
        :class:`~graphfuse.checkpoint.CheckpointError` naming it."""
        path = Path(folder) / BUILDER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"No saved builder in {folder}: {path} does not exist")
        config = read_json(path, "the builder")
        try:
            return cls.from_config(config, folder)
        except REBUILD_ERRORS as error:
            raise CheckpointError(f"{path}: the builder could not be rebuilt: {error}") from None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_templates"] = TemplateCache(self._templates.max_bytes)
        return state

    def __repr__(self) -> str:
        cross = [f"{r.edge_type}: {r.strategy!r}" for r in self.relations if r.strategy is not None]
        return (f"{self.__class__.__name__}(modalities={self.modalities}, virtual_nodes={self.virtual_nodes}, "
                f"cross=[{', '.join(cross)}], max_edges_per_sample={self.max_edges_per_sample}"
                f"{'' if self.extra_keys == 'error' else f', extra_keys={self.extra_keys!r}'})")


def _extra_keys(extra_keys: str | Collection[str], modalities: Mapping[str, Any]) -> str | tuple[str, ...]:
    """``"error"``, ``"ignore"`` or the sorted tuple of the key names to ignore."""
    if isinstance(extra_keys, str):
        if extra_keys not in ("error", "ignore"):
            raise ValueError(f"GraphBuilder 'extra_keys' must be 'error', 'ignore' or a collection of key names to "
                             f"ignore, e.g. ('id', 'meta'); got {extra_keys!r}")
        return extra_keys
    if isinstance(extra_keys, Mapping) or not isinstance(extra_keys, Collection) \
            or not all(isinstance(key, str) for key in extra_keys):
        raise TypeError(f"GraphBuilder 'extra_keys' as a collection must be a list, tuple or set of key names (str), "
                        f"got {short_repr(extra_keys)}")
    clashing = sorted(set(extra_keys) & set(modalities))
    if clashing:
        raise ValueError(f"GraphBuilder 'extra_keys' names {clashing}, which are modalities of this builder; a "
                         f"modality's key is never ignored (leave it out of the sample, or set it to None)")
    return tuple(sorted(set(extra_keys)))


_node_attributes = operator.attrgetter(*NODE_ATTRIBUTES)


def _layout(nodes: NodeSet) -> tuple:
    """What a modality's node sets share: each node attribute's dtype and shape past the node count."""
    return tuple(map(_attribute_layout, _node_attributes(nodes)))


def _attribute_layout(value: Tensor | None) -> tuple | None:
    return None if value is None else (value.dtype, value.shape[1:])


def _describe(value: Tensor | None) -> str:
    return "absent" if value is None else f"dtype {value.dtype}, shape [N, {', '.join(map(str, value.shape[1:]))}]"
