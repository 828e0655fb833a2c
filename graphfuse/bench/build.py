"""Graph construction benchmark: building and batching sample graphs from featurised node sets.

Methods, measured side by side on the same node sets:

* ``graphfuse``: :meth:`GraphBuilder.collate` (vectorised batching of cached templates).
* ``pyg``: one :class:`HeteroData` per sample (:meth:`GraphBuilder.build`) and
  :meth:`Batch.from_data_list`, the way PyG users batch heterogeneous graphs.
* ``dgl``: one ``dgl.heterograph`` per sample and ``dgl.batch`` (when DGL is importable).

Featurisation (raw sample -> node sets) is timed on its own: it is the same for all methods.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch_geometric
from torch_geometric.data import Batch

from graphfuse.bench.checks import names_of
from graphfuse.bench.timing import ALLOCATORS, configure_allocator, interleaved_seconds
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FullBipartite,
    GraphBuilder,
    ImageModality,
    NodeSet,
    RandomBipartite,
    StridedBipartite,
    TextModality,
    Tokenizer,
)
from graphfuse.data.compare import graph_difference
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.typing import dgl_importable, import_dgl

logger = logging.getLogger(__name__)

METHODS = ("graphfuse", "pyg", "dgl")
CROSS_CHOICES = ("full", "strided", "random")


def make_builder(patch_size: int, channels: int, cross: str) -> GraphBuilder:
    """The tri-modal builder the benchmark measures: full, strided or random cross edges between every pair."""
    modalities = {
        "text": TextModality(Tokenizer.from_corpus([WORDS])),
        "image": ImageModality(patch_size=patch_size, channels=channels),
        "audio": AudioModality(),
    }
    strategy = {"full": FullBipartite(), "strided": StridedBipartite(budget=8), "random": RandomBipartite(budget=8)}
    return GraphBuilder(modalities, cross=[CrossEdges(a, b, strategy[cross])
                                           for a, b in itertools.combinations(modalities, 2)])


def pyg_batch(builder: GraphBuilder, node_sets: Sequence[Mapping[str, NodeSet]]) -> Batch:
    return Batch.from_data_list([builder.build(nodes) for nodes in node_sets])


def dgl_batch(builder: GraphBuilder, node_sets: Sequence[Mapping[str, NodeSet]]) -> Any:
    dgl = import_dgl()
    graphs = []
    for nodes in node_sets:
        sets = {node_type: nodes.get(node_type, builder.empty_node_sets[node_type]) for node_type in builder.node_types}
        edges = {}
        for relation in builder.relations:
            edge_index = builder.relation_edges(relation, nodes)
            edges[relation.edge_type] = (edge_index[0], edge_index[1])
        graph = dgl.heterograph(edges, num_nodes_dict={t: s.num_nodes for t, s in sets.items()})
        for node_type, node_set in sets.items():
            for attribute, value in node_set.attributes().items():
                graph.nodes[node_type].data[attribute] = value
        graphs.append(graph)
    return dgl.batch(graphs)


def check_same_batch(ours: Batch, reference: Batch) -> None:
    """Raises unless both batches hold the same node attributes, edges, ``batch`` and ``ptr``."""
    difference = graph_difference(ours, reference)
    if difference is not None:
        raise RuntimeError(f"graphfuse's batch differs from Batch.from_data_list: {difference}")


def run(batch_size: int = 64, tokens: int = 32, grid: int = 7, patch_size: int = 4, channels: int = 3,
        frames: int = 50, cross: str = "full", rounds: int = 30, methods: Sequence[str] = METHODS,
        threads: int = 1, allocator: str = "tuned", seed: int = 0) -> dict:
    """Runs the benchmark and returns the results (the ``--json`` document)."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {METHODS}")
    allocator_description = configure_allocator(allocator)
    torch.set_num_threads(threads)
    if "dgl" in methods and not dgl_importable():
        logger.warning("dgl is not importable: the 'dgl' method is skipped (install graphfuse[dgl])")
        methods = [m for m in methods if m != "dgl"]

    builder = make_builder(patch_size, channels, cross)
    raw = synthetic_samples(batch_size, tokens=tokens, grid=grid, patch_size=patch_size, channels=channels,
                            frames=frames, seed=seed)
    node_sets = [builder.featurize(sample) for sample in raw]
    check_same_batch(builder.collate(node_sets), pyg_batch(builder, node_sets))

    candidates = {
        "graphfuse": lambda: builder.collate(node_sets),
        "pyg": lambda: pyg_batch(builder, node_sets),
        "dgl": lambda: dgl_batch(builder, node_sets),
    }
    seconds = interleaved_seconds({m: candidates[m] for m in methods}, rounds)
    featurize_seconds = interleaved_seconds({"featurize": lambda: [builder.featurize(s) for s in raw]},
                                            max(3, rounds // 3))["featurize"]
    results = [{"method": m, "samples_per_s": batch_size / seconds[m], "us_per_sample": 1e6 * seconds[m] / batch_size}
               for m in methods]
    by_method = {r["method"]: r for r in results}
    speedup = (by_method["graphfuse"]["samples_per_s"] / by_method["pyg"]["samples_per_s"]
               if {"graphfuse", "pyg"} <= by_method.keys() else None)
    first = node_sets[0]
    return {
        "config": {
            "batch_size": batch_size, "tokens": tokens, "grid": f"{grid}x{grid}", "patch_size": patch_size,
            "channels": channels, "frames": frames, "cross": cross, "rounds": rounds, "threads": threads,
            "allocator": allocator_description, "nodes_per_sample": sum(s.num_nodes for s in first.values()),
            "edges_per_sample": sum(builder.relation_edges(r, first).size(1) for r in builder.relations),
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "dgl": import_dgl().__version__ if "dgl" in methods else None,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        },
        "results": results,
        "speedup_vs_pyg": speedup,
        "featurization": {"samples_per_s": batch_size / featurize_seconds,
                          "us_per_sample": 1e6 * featurize_seconds / batch_size},
    }


def format_table(report: dict) -> str:
    config = report["config"]
    lines = [
        f"graph construction + batching: {config['tokens']} tokens, {config['grid']} patches, {config['frames']} "
        f"frames, {config['cross']} cross edges, batch {config['batch_size']}, {config['threads']} thread(s)",
        f"({config['nodes_per_sample']} nodes and {config['edges_per_sample']} edges per sample; "
        f"allocator: {config['allocator']})",
        "",
        f"{'method':<12}{'samples/s':>12}{'us/sample':>12}{'vs pyg':>10}",
    ]
    pyg = next((r for r in report["results"] if r["method"] == "pyg"), None)
    for result in report["results"]:
        ratio = f"{result['samples_per_s'] / pyg['samples_per_s']:.1f}x" if pyg else "-"
        lines.append(f"{result['method']:<12}{result['samples_per_s']:>12,.0f}{result['us_per_sample']:>12.1f}"
                     f"{ratio:>10}")
    featurization = report["featurization"]
    lines += ["", f"featurisation (raw -> node sets, same for every method): "
              f"{featurization['samples_per_s']:,.0f} samples/s, {featurization['us_per_sample']:.0f} us/sample"]
    if report["speedup_vs_pyg"] is not None:
        lines.append(f"speedup_vs_pyg: {report['speedup_vs_pyg']:.1f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--grid", type=int, default=7, help="patch grid side (image side = grid * patch size)")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--cross", choices=CROSS_CHOICES, default="full",
                        help="cross-modal edges: full bipartite, or strided / random with 8 edges per node")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved measurement rounds (median reported)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allocator", choices=ALLOCATORS, default="tuned",
                        help="'tuned' keeps freed memory in the process (all methods alike); 'default' is glibc's")
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of --rounds")


def main(args: argparse.Namespace) -> dict:
    report = run(batch_size=args.batch_size, tokens=args.tokens, grid=args.grid, patch_size=args.patch_size,
                 channels=args.channels, frames=args.frames, cross=args.cross,
                 rounds=5 if args.quick else args.rounds, methods=names_of("--methods", args.methods, METHODS),
                 threads=args.threads, allocator=args.allocator)
    print(format_table(report))
    return report
