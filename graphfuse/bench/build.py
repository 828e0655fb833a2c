"""Graph construction benchmark: building and batching sample graphs from featurised node sets,
or (``--from-raw``) from raw samples.

Methods, measured side by side on the same node sets:

* ``graphfuse``: :meth:`GraphBuilder.collate` (vectorised batching of cached templates).
* ``pyg``: one :class:`HeteroData` per sample (:meth:`GraphBuilder.build`) and
  :meth:`Batch.from_data_list`, the way PyG users batch heterogeneous graphs.
* ``dgl``: one ``dgl.heterograph`` per sample and ``dgl.batch`` (when DGL is importable).

Featurisation (raw sample -> node sets) is timed on its own: it is the same for all methods.

With ``--from-raw`` the methods start from raw samples (text, uint8 image, waveform), at the size
options' size and at a realistic one (64 tokens, 196 patches of a 224-pixel image, 1,000 audio
frames):

* ``batched``: :meth:`GraphBuilder.collate` of the raw samples, each modality featurising the
  batch's inputs together (:meth:`GraphBuilder.featurize_many`).
* ``per-sample``: :meth:`GraphBuilder.featurize` of each sample, then :meth:`GraphBuilder.collate`.
* ``pyg``: featurise each sample, build its :class:`HeteroData` (:meth:`GraphBuilder.build`),
  then :meth:`Batch.from_data_list`.

and featurisation alone, batched against per sample.
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

from graphfuse.bench.checks import UsageError, names_of
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
RAW_METHODS = ("batched", "per-sample", "pyg")
CROSS_CHOICES = ("full", "strided", "random")
#: The sizes ``--from-raw`` measures: ``default`` is the size options' (and ``--cross``, full unless
#: given); ``real`` a realistic sample, with strided cross edges unless ``--cross`` is given (full
#: edges between 1,260 nodes are half a million per sample).
SIZES = ("default", "real")
REAL_SIZE = {"tokens": 64, "grid": 14, "patch_size": 16, "frames": 1000}
REAL_CROSS = "strided"
#: Batched and per-sample featurisation agree to float32 rounding (FFTs over different frame counts).
RAW_TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
#: Measurement rounds: ``--rounds``' default, and the rounds of ``--quick``.
ROUNDS, QUICK_ROUNDS = 30, 5


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


def check_same_batch(ours: Batch, reference: Batch, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Raises unless both batches hold the same node attributes (floating ones within ``rtol`` and
    ``atol``), edges, ``batch`` and ``ptr``."""
    difference = graph_difference(ours, reference, rtol=rtol, atol=atol)
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
    return {
        "config": {
            **size_config(builder, node_sets[0], batch_size, tokens, grid, patch_size, channels, frames, cross),
            "rounds": rounds, "threads": threads, "allocator": allocator_description,
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "dgl": import_dgl().__version__ if "dgl" in methods else None, "machine": machine(),
        },
        "results": results,
        "speedup_vs_pyg": speedup,
        "featurization": {"samples_per_s": batch_size / featurize_seconds,
                          "us_per_sample": 1e6 * featurize_seconds / batch_size},
    }


def size_config(builder: GraphBuilder, nodes: Mapping[str, NodeSet], batch_size: int, tokens: int, grid: int,
                patch_size: int, channels: int, frames: int, cross: str) -> dict[str, Any]:
    """The sample size of a measurement, with the nodes and edges of one sample graph (``nodes``)."""
    return {"batch_size": batch_size, "tokens": tokens, "grid": f"{grid}x{grid}", "patch_size": patch_size,
            "channels": channels, "frames": frames, "cross": cross,
            "nodes_per_sample": sum(node_set.num_nodes for node_set in nodes.values()),
            "edges_per_sample": sum(builder.relation_edges(r, nodes).size(1) for r in builder.relations)}


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"


def run_from_raw(batch_size: int = 64, sizes: Sequence[str] = SIZES, tokens: int = 32, grid: int = 7,
                 patch_size: int = 4, channels: int = 3, frames: int = 50, cross: str | None = None, rounds: int = 30,
                 methods: Sequence[str] = RAW_METHODS, threads: int = 1, allocator: str = "tuned",
                 seed: int = 0) -> dict:
    """Raw samples -> batch, batched against per sample and against PyG's path, at each of ``sizes``
    (``"default"``: the given size; ``"real"``: :data:`REAL_SIZE`); ``cross`` applies to both (default:
    full at the given size, :data:`REAL_CROSS` at the realistic one). Returns the ``--json`` document."""
    for option, names, choices in (("methods", methods, RAW_METHODS), ("sizes", sizes, SIZES)):
        unknown = set(names) - set(choices)
        if unknown:
            raise ValueError(f"Unknown {option} {sorted(unknown)}; choose from {choices}")
    allocator_description = configure_allocator(allocator)
    torch.set_num_threads(threads)
    given = {"tokens": tokens, "grid": grid, "patch_size": patch_size, "frames": frames}
    measured = {}
    for size in sizes:
        shape = given if size == "default" else REAL_SIZE
        size_cross = cross or ("full" if size == "default" else REAL_CROSS)
        measured[size] = _from_raw(batch_size, channels, size_cross, rounds, methods, seed, **shape)
    return {
        "config": {"batch_size": batch_size, "channels": channels, "rounds": rounds, "threads": threads,
                   "allocator": allocator_description, "torch": torch.__version__,
                   "torch_geometric": torch_geometric.__version__, "machine": machine()},
        "sizes": measured,
        "featurization_speedup": {size: report["featurization"]["speedup"] for size, report in measured.items()},
        "speedup_vs_pyg": {size: report["speedup_vs_pyg"] for size, report in measured.items()},
    }


def _from_raw(batch_size: int, channels: int, cross: str, rounds: int, methods: Sequence[str], seed: int,
              tokens: int, grid: int, patch_size: int, frames: int) -> dict:
    builder = make_builder(patch_size, channels, cross)
    raw = synthetic_samples(batch_size, tokens=tokens, grid=grid, patch_size=patch_size, channels=channels,
                            frames=frames, seed=seed)
    check_same_batch(builder.collate(raw), pyg_batch(builder, raw), **RAW_TOLERANCE)

    candidates = {
        "batched": lambda: builder.collate(raw),
        "per-sample": lambda: builder.collate([builder.featurize(sample) for sample in raw]),
        "pyg": lambda: pyg_batch(builder, raw),  # build() featurises each raw sample
    }
    featurization = {
        "featurize batched": lambda: builder.featurize_many(raw),
        "featurize per-sample": lambda: [builder.featurize(sample) for sample in raw],
    }
    seconds = interleaved_seconds({**{m: candidates[m] for m in methods}, **featurization}, rounds)
    results = [{"method": m, "samples_per_s": batch_size / seconds[m], "us_per_sample": 1e6 * seconds[m] / batch_size}
               for m in methods]
    batched, per_sample = seconds["featurize batched"], seconds["featurize per-sample"]
    return {
        "config": size_config(builder, builder.featurize(raw[0]), batch_size, tokens, grid, patch_size, channels,
                              frames, cross),
        "results": results,
        "featurization": {"batched_us_per_sample": 1e6 * batched / batch_size,
                          "per_sample_us_per_sample": 1e6 * per_sample / batch_size, "speedup": per_sample / batched},
        "speedup_vs_pyg": seconds["pyg"] / seconds["batched"] if {"batched", "pyg"} <= set(methods) else None,
        "speedup_vs_per_sample": (seconds["per-sample"] / seconds["batched"]
                                  if {"batched", "per-sample"} <= set(methods) else None),
    }


def method_table(title: str, shape: Mapping[str, Any], config: Mapping[str, Any], results: Sequence[dict]) -> list[str]:
    """What was measured (``title``, the sample size ``shape``, threads and allocator of ``config``), then
    each method's samples/s, us/sample and ratio to PyG's."""
    lines = [
        f"{title}: {shape['tokens']} tokens, {shape['grid']} patches of {shape['patch_size']} px, {shape['frames']} "
        f"frames, {shape['cross']} cross edges, batch {shape['batch_size']}, {config['threads']} thread(s)",
        f"({shape['nodes_per_sample']} nodes and {shape['edges_per_sample']} edges per sample; "
        f"allocator: {config['allocator']})",
        "",
        f"{'method':<12}{'samples/s':>12}{'us/sample':>12}{'vs pyg':>10}",
    ]
    pyg = next((r for r in results if r["method"] == "pyg"), None)
    for result in results:
        ratio = f"{result['samples_per_s'] / pyg['samples_per_s']:.1f}x" if pyg else "-"
        lines.append(f"{result['method']:<12}{result['samples_per_s']:>12,.0f}{result['us_per_sample']:>12.1f}"
                     f"{ratio:>10}")
    return lines


def format_table(report: dict) -> str:
    config = report["config"]
    lines = method_table("graph construction + batching", config, config, report["results"])
    featurization = report["featurization"]
    lines += ["", f"featurisation (raw -> node sets, same for every method): "
              f"{featurization['samples_per_s']:,.0f} samples/s, {featurization['us_per_sample']:.0f} us/sample"]
    if report["speedup_vs_pyg"] is not None:
        lines.append(f"speedup_vs_pyg: {report['speedup_vs_pyg']:.1f}")
    return "\n".join(lines)


def format_raw_tables(report: dict) -> str:
    config = report["config"]
    lines = []
    for size, measured in report["sizes"].items():
        lines += method_table(f"raw samples -> batch ({size} size)", measured["config"], config, measured["results"])
        featurization = measured["featurization"]
        lines += ["", f"featurisation alone: batched {featurization['batched_us_per_sample']:.1f} us/sample, per "
                  f"sample {featurization['per_sample_us_per_sample']:.1f} us/sample: {featurization['speedup']:.1f}x",
                  ""]
    lines.append("featurization_speedup: " + ", ".join(
        f"{size} {speedup:.1f}" for size, speedup in report["featurization_speedup"].items()))
    if all(speedup is not None for speedup in report["speedup_vs_pyg"].values()):
        lines.append("speedup_vs_pyg (raw samples -> batch): " + ", ".join(
            f"{size} {speedup:.1f}" for size, speedup in report["speedup_vs_pyg"].items()))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--grid", type=int, default=7, help="patch grid side (image side = grid * patch size)")
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--cross", choices=CROSS_CHOICES, default=None,
                        help="cross-modal edges: full bipartite, or strided / random with 8 edges per node (default: "
                             f"full; with --from-raw, full at the default size and {REAL_CROSS} at the real one)")
    parser.add_argument("--rounds", type=int,
                        help=f"interleaved measurement rounds (median reported; default: {ROUNDS})")
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)} "
                                                        f"(with --from-raw: {','.join(RAW_METHODS)})")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allocator", choices=ALLOCATORS, default="tuned",
                        help="'tuned' keeps freed memory in the process (all methods alike); 'default' is glibc's")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds; not with --rounds")
    parser.add_argument("--from-raw", action="store_true",
                        help="start from raw samples: batched featurisation against per-sample featurisation and "
                             "against PyG's path (featurise + HeteroData + Batch.from_data_list)")
    parser.add_argument("--sizes", default=None,
                        help=f"with --from-raw: comma-separated subset of {','.join(SIZES)} (default: both; real = "
                             f"{REAL_SIZE['tokens']} tokens, {REAL_SIZE['grid']}x{REAL_SIZE['grid']} patches of "
                             f"{REAL_SIZE['patch_size']} px, {REAL_SIZE['frames']} frames)")


def main(args: argparse.Namespace) -> dict:
    if args.quick and args.rounds is not None:
        raise UsageError(f"error: --quick measures {QUICK_ROUNDS} rounds; drop --rounds, or --quick")
    rounds = QUICK_ROUNDS if args.quick else ROUNDS if args.rounds is None else args.rounds
    if args.from_raw:
        methods = names_of("--methods", RAW_METHODS if args.methods is None else args.methods, RAW_METHODS)
        sizes = names_of("--sizes", SIZES if args.sizes is None else args.sizes, SIZES)
        report = run_from_raw(batch_size=args.batch_size, sizes=sizes, tokens=args.tokens, grid=args.grid,
                              patch_size=args.patch_size, channels=args.channels, frames=args.frames, cross=args.cross,
                              rounds=rounds, methods=methods, threads=args.threads, allocator=args.allocator)
        print(format_raw_tables(report))
        return report
    if args.sizes is not None:
        raise UsageError("error: --sizes applies to --from-raw only; add --from-raw or drop --sizes")
    methods = names_of("--methods", METHODS if args.methods is None else args.methods, METHODS)
    if methods == ["dgl"] and not dgl_importable():
        raise UsageError("error: --methods dgl needs DGL, which is not importable here; install the extra: pip install "
                         "'graphfuse[dgl]' (or measure graphfuse,pyg)")
    report = run(batch_size=args.batch_size, tokens=args.tokens, grid=args.grid, patch_size=args.patch_size,
                 channels=args.channels, frames=args.frames, cross=args.cross or "full", rounds=rounds,
                 methods=methods, threads=args.threads, allocator=args.allocator)
    print(format_table(report))
    return report
