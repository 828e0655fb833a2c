"""Fusion throughput benchmark: training steps (forward + backward) per second and peak step memory.

Every method is the same model around a different fusion: per-type input encoders (token, patch
and frame encoders with positions) -> FUSION -> mean over each sample's nodes -> linear head ->
cross-entropy. Methods are timed in interleaved rounds in one process (medians reported).

* ``graphfuse-{gcn,gat,hgt,gated}``: :class:`graphfuse.nn.FusionEncoder` blocks (conv + residual +
  LayerNorm, no feed-forward, as the other graph methods have none); building the batch's
  :class:`~graphfuse.nn.FlatGraph` is inside the timed step.
* ``pyg-heteroconv-{gcn,gat}``, ``pyg-hgt``, ``dgl-{graphconv,gat}``: the same number of PyG / DGL
  layers with a residual (DGL graph conversion is outside the timed step, like data loading).
* ``dense-transformer``: :class:`graphfuse.baselines.TransformerFusion` with post-norm ReLU layers
  (feed-forward 4x hidden) over each sample's concatenated nodes with modality embeddings;
  ``early-fusion-mlp``: per-modality means through :class:`graphfuse.baselines.EarlyFusion`.

With ``--sizes``, every modality has n = 16, 64, 256 nodes, with full cross edges and with k-NN
cross edges (k = 8; graphfuse methods recompute them from the embeddings before every block, or
with ``--knn-update forward`` choose them once per step from the fusion's input and share them
across blocks, ``FusionEncoder(knn_update="forward")``, a different model; the PyG / DGL layers
take fixed edges, so they run only with full edges).

``--preset real`` measures inputs of a realistic size instead (batch 8 unless ``--batch-size``
says otherwise): a 64-word caption with each word's time span, a 224-pixel image in 16-pixel
patches (196 patches) and 10 s of audio at the 10 ms hop (1,000 frames), with three kinds of
cross-modal edges: ``sparse`` (each word joined to the frames it spans, ``TemporalAlignment``;
patches <-> frames and words <-> patches ``StridedBipartite(8)``), ``knn`` and ``full``. A method
that cannot run a kind of edges, or whose batch would not fit in memory, is listed with the
reason.

``--modes fp32,bf16,compile`` measures each method in each mode side by side: ``bf16`` runs the
step under ``torch.autocast`` with bfloat16, ``compile`` runs the model through ``torch.compile``
(graphfuse's convs take their reference path there, which the compiler fuses, unless
``--conv-path fused`` keeps their kernels, with a graph break at each), ``bf16+compile`` both; each
row's ``vs_fp32`` is its speed over the same method in fp32, and ``vs_dense_transformer`` compares
with the transformer in the same mode.

Peak step memory is the peak growth of the resident set during one training step (after a warm-up
step) in a fresh process per method whose allocator returns freed memory at once, so the resident
set follows live tensors (CPU, Linux/glibc), or ``torch.cuda.max_memory_allocated`` (CUDA).
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch_geometric

from graphfuse.bench.checks import UsageError, names_of
from graphfuse.bench.comparisons import COMPARISONS, mean_per_sample
from graphfuse.bench.timing import ALLOCATORS, configure_allocator, interleaved_seconds, return_freed_memory
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FullBipartite,
    GraphBuilder,
    ImageModality,
    StridedBipartite,
    TemporalAlignment,
    TextModality,
    Tokenizer,
)
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.nn import FlatGraph, FusionEncoder, NodeEncoders
from graphfuse.nn.conv.base import PATHS
from graphfuse.nn.fusion import KNN_UPDATES
from graphfuse.typing import dgl_importable

logger = logging.getLogger(__name__)

GRAPHFUSE_CONVS = ("gcn", "gat", "hgt", "gated")
METHODS = (*(f"graphfuse-{conv}" for conv in GRAPHFUSE_CONVS), "pyg-heteroconv-gcn", "pyg-heteroconv-gat", "pyg-hgt",
           "dgl-graphconv", "dgl-gat", "dense-transformer", "early-fusion-mlp")
#: The methods whose attention splits ``--hidden`` channels over ``--heads``.
SPLIT_HEADS = ("graphfuse-gat", "graphfuse-hgt", "pyg-heteroconv-gat", "pyg-hgt", "dgl-gat", "dense-transformer")
#: Measurement rounds: ``--rounds``' default, and the rounds of ``--quick``.
ROUNDS, QUICK_ROUNDS = 7, 3
SIZES = (16, 64, 256)
CROSS = ("full", "knn")
PRESETS = ("default", "real")
#: The realistic inputs of ``--preset real``: a 64-word caption, a 224-pixel image in 16-pixel
#: patches and 10 s of audio at the 10 ms hop; batch 8.
REAL = {"tokens": 64, "grid": 14, "patch_size": 16, "frames": 1000, "batch_size": 8}
REAL_CROSS = ("sparse", "knn", "full")
MODES = ("fp32", "bf16", "compile", "bf16+compile")
#: Cross-modal edges each node receives from another modality with ``sparse`` edges (where no timing
#: pairs them).
SPARSE_BUDGET = 8
NUM_CLASSES = 10
KNN = 8
# PyG / DGL layers materialise [E, hidden] messages: beyond this many edges a batch does not fit.
MAX_BASELINE_EDGES = 4_000_000


@dataclass(frozen=True)
class Config:
    tokens: int = 32
    grid: int = 7
    frames: int = 50
    patch_size: int = 4
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    batch_size: int = 64
    cross: str = "full"
    timed_text: bool = False
    knn_update: str = "block"
    conv_path: str = "auto"
    mode: str = "fp32"
    threads: int = 1
    device: str = "cpu"

    @property
    def n(self) -> int | None:
        """Nodes per modality when all modalities have the same count (the ``--sizes`` runs)."""
        return self.tokens if self.tokens == self.grid ** 2 == self.frames else None

    @property
    def size(self) -> str:
        """The size in the tables: ``n``, ``"real"`` (timed captions) or ``"default"``."""
        return str(self.n) if self.n else "real" if self.timed_text else "default"


def make_builder(config: Config) -> GraphBuilder:
    modalities = {"text": TextModality(Tokenizer.from_corpus([WORDS]), max_length=max(512, config.tokens),
                                       spans=config.timed_text),
                  "image": ImageModality(patch_size=config.patch_size, channels=3), "audio": AudioModality()}
    if config.cross == "knn":
        cross = []
    elif config.cross == "sparse":
        cross = [CrossEdges("text", "audio", TemporalAlignment()),
                 CrossEdges("text", "image", StridedBipartite(SPARSE_BUDGET)),
                 CrossEdges("image", "audio", StridedBipartite(SPARSE_BUDGET))]
    else:
        cross = [CrossEdges(a, b, FullBipartite()) for a, b in itertools.combinations(modalities, 2)]
    return GraphBuilder(modalities, cross=cross, max_edges_per_sample=None)


def make_samples(config: Config, seed: int) -> list[dict]:
    """Synthetic samples of the config's sizes; with ``timed_text`` each word spans an equal share
    of the clip, in order."""
    samples = synthetic_samples(config.batch_size, tokens=config.tokens, grid=config.grid,
                                patch_size=config.patch_size, frames=config.frames, seed=seed)
    if config.timed_text:
        for sample in samples:
            waveform, rate = sample["audio"]
            share = waveform.numel() / rate / config.tokens
            sample["text"] = {"tokens": sample["text"].split(),
                              "spans": [[i * share, (i + 1) * share] for i in range(config.tokens)]}
    return samples


def metadata(builder: GraphBuilder) -> tuple[list, list]:
    """The builder's metadata with every cross-modal relation (k-NN fills them inside the model)."""
    node_types, edge_types = builder.metadata()
    cross = [(a, "to", b) for a, b in itertools.permutations(builder.modalities, 2)]
    return node_types, [*edge_types, *(e for e in cross if e not in edge_types)]


class GraphfuseFusion(torch.nn.Module):
    def __init__(self, config: Config, meta, conv: str) -> None:
        super().__init__()
        knn = KNN if config.cross == "knn" else None
        self.encoder = FusionEncoder(config.hidden, meta, config.layers, conv, knn=knn, heads=config.heads,
                                     knn_update=config.knn_update, ffn_ratio=0, dropout=0.0,
                                     conv_kwargs={"path": config.conv_path})

    def forward(self, h_dict, batch):
        graph = FlatGraph.from_batch(batch, self.encoder.schema)
        out = self.encoder(graph.flatten(h_dict), graph)
        return mean_per_sample(graph.unflatten(out), batch.batch_dict, batch.num_graphs)


class StepModel(torch.nn.Module):
    """Encoders -> fusion -> head: what every method trains."""

    def __init__(self, builder: GraphBuilder, fusion: torch.nn.Module, hidden: int) -> None:
        super().__init__()
        self.encoders = NodeEncoders.from_builder(builder, hidden)
        self.fusion = fusion
        self.head = torch.nn.Linear(hidden, NUM_CLASSES)

    def forward(self, batch, graph) -> torch.Tensor:
        return self.head(self.fusion(self.encoders(batch), graph))


def available(method: str, config: Config) -> str | None:
    """Why ``method`` cannot run in ``config``, or ``None``."""
    if method.startswith("dgl-"):
        if not dgl_importable():
            return "DGL not importable"
        if config.device != "cpu":
            return "dgl 1.1.3 is CPU-only here"
    if method.split("-")[0] in ("pyg", "dgl"):
        if config.cross == "knn":
            return "fixed edges only"
        cross_edges = 6 * config.batch_size * max(config.tokens, config.grid ** 2, config.frames) ** 2
        if config.cross == "full" and cross_edges > MAX_BASELINE_EDGES:
            gigabytes = cross_edges * config.hidden * 4 / 1e9
            return f"{cross_edges / 1e6:.0f}M cross edges: per-edge messages alone need {gigabytes:.0f} GB"
    return None


def setup(method: str, config: Config, seed: int = 0):
    """The model, the batch and a function running one training step."""
    torch.manual_seed(seed)
    builder = make_builder(config)
    samples = make_samples(config, seed)
    batch = builder.collate([builder.featurize(s) for s in samples])
    meta = metadata(builder)
    device = torch.device(config.device)
    batch = batch.to(device)
    if method.startswith("graphfuse-"):
        fusion, graph = GraphfuseFusion(config, meta, method.removeprefix("graphfuse-")), batch
    else:
        comparison = COMPARISONS[method]
        fusion, graph = comparison.build(meta, config.hidden, config.layers, config.heads), comparison.prepare(batch)
    model = StepModel(builder, fusion, config.hidden).to(device)
    target = torch.randint(0, NUM_CLASSES, (config.batch_size,), device=device)
    model(batch, graph)  # materialise lazy sizes before the optimiser sees the parameters
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if "compile" in config.mode else model

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in config.mode):
            loss = torch.nn.functional.cross_entropy(forward(batch, graph).float(), target)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def peak_step_mb(method: str, config: Config) -> float:
    """Peak memory of a training step (see the module docstring); run in a fresh process on CPU."""
    torch.set_num_threads(config.threads)
    if not config.device.startswith("cuda") and not return_freed_memory():
        raise RuntimeError("peak memory on CPU needs glibc's mallopt to follow live memory")
    step = setup(method, config)
    step()
    if config.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - before) / 2 ** 20
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear_refs:  # resets the peak resident set (VmHWM)
        clear_refs.write("5")
    step()
    return _status_mb("VmHWM") - before


def _probe_in_subprocess(method: str, config: Config) -> float | None:
    code = ("import json,sys; from graphfuse.bench.throughput import Config, peak_step_mb; "
            "print(json.dumps(peak_step_mb(sys.argv[1], Config(**json.loads(sys.argv[2])))))")
    result = subprocess.run([sys.executable, "-c", code, method, json.dumps(asdict(config))],
                            capture_output=True, text=True, timeout=900)
    if result.returncode:
        logger.warning("memory probe of %s failed: %s", method, result.stderr.strip().splitlines()[-1:])
        return None
    return float(result.stdout.strip().splitlines()[-1])


def measure(config: Config, methods: list[str], rounds: int, modes: Sequence[str] = ("fp32",)
            ) -> list[dict[str, Any]]:
    """One configuration: every available method in every mode timed side by side, then its peak memory."""
    runnable, rows = {}, []
    for method in methods:
        reason = available(method, config)
        if reason is not None:
            logger.info("skipping %s (size=%s, cross=%s): %s", method, config.size, config.cross, reason)
            rows.append({"method": method, "n": config.n, "size": config.size, "cross": config.cross,
                         "skipped": reason})
            continue
        for mode in modes:
            runnable[method, mode] = setup(method, replace(config, mode=mode))
    seconds = interleaved_seconds(runnable, rounds, min_seconds=0.2)
    for (method, mode), value in seconds.items():
        moded = replace(config, mode=mode)
        peak = peak_step_mb(method, moded) if config.device.startswith("cuda") else _probe_in_subprocess(method, moded)
        rows.append({"method": method, "n": config.n, "size": config.size, "cross": config.cross, "mode": mode,
                     "samples_per_s": config.batch_size / value, "peak_mb": peak})
    timed = [row for row in rows if not row.get("skipped")]
    for row in timed:
        same_mode = [r for r in timed if r["mode"] == row["mode"]]
        for key, reference in (("vs_dense_transformer", "dense-transformer"),
                               ("vs_pyg_heteroconv", "pyg-heteroconv-gcn")):
            base = next((r["samples_per_s"] for r in same_mode if r["method"] == reference), None)
            row[key] = row["samples_per_s"] / base if base else None
        fp32 = next((r["samples_per_s"] for r in timed if r["method"] == row["method"] and r["mode"] == "fp32"), None)
        row["vs_fp32"] = row["samples_per_s"] / fp32 if fp32 else None
    return rows


def configs(base: Config, sizes: bool, preset: str = "default") -> list[Config]:
    if preset == "real":
        return [replace(base, cross=cross, timed_text=True) for cross in REAL_CROSS]
    if not sizes:
        return [base]
    return [base] + [replace(base, tokens=n, grid=int(math.isqrt(n)), frames=n, cross=cross)
                     for n in SIZES for cross in CROSS]


def format_table(results: list[dict[str, Any]]) -> str:
    lines = ["| method | size | cross | mode | samples/s | peak MB | vs dense-transformer | vs pyg-heteroconv | "
             "vs fp32 |", "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for row in results:
        if row.get("skipped"):
            lines.append(f"| {row['method']} | {row['size']} | {row['cross']} | | not run: {row['skipped']} | | | | |")
    results = [row for row in results if not row.get("skipped")]

    def fmt(value, spec, unit=""):
        return "n/a" if value is None else format(value, spec) + unit

    for row in results:
        lines.append(f"| {row['method']} | {row['size']} | {row['cross']} | {row['mode']} | "
                     f"{row['samples_per_s']:.1f} | {fmt(row['peak_mb'], '.0f')} | "
                     f"{fmt(row['vs_dense_transformer'], '.2f', 'x')} | {fmt(row['vs_pyg_heteroconv'], '.2f', 'x')} | "
                     f"{fmt(row['vs_fp32'], '.2f', 'x')} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", action="store_true", help=f"also n = {SIZES} nodes per modality, full and k-NN")
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="real: a 64-word timed caption, 196 patches of a 224-pixel image and 1,000 audio frames, "
                             "batch 8, with sparse, k-NN and full cross-modal edges")
    parser.add_argument("--quick", action="store_true",
                        help=f"the default config only, {QUICK_ROUNDS} rounds (< 5 minutes); not with --sizes or "
                             f"--rounds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, help="samples per step (default: 64; 8 with --preset real)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4, help=f"attention heads, a divisor of --hidden (for "
                                                              f"{', '.join(SPLIT_HEADS)})")
    parser.add_argument("--rounds", type=int,
                        help=f"interleaved measurement rounds (median reported; default: {ROUNDS})")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    parser.add_argument("--modes", default="fp32", help="comma-separated subset of " + ",".join(MODES) +
                        " measured side by side (default: fp32)")
    parser.add_argument("--knn-update", choices=KNN_UPDATES, default="block",
                        help="when graphfuse methods choose k-NN edges: before every block (block) or once per step "
                             "from the fusion's input, shared by the blocks (forward: FusionEncoder(knn_update=...), "
                             "a different model); the results' config records it")
    parser.add_argument("--conv-path", choices=PATHS, default="auto",
                        help="the graphfuse convs' path: auto (fused kernels, the reference path under "
                             "torch.compile), fused (the kernels in every mode) or reference; the results' "
                             "config records it")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allocator", choices=ALLOCATORS, default="tuned")


def main(args: argparse.Namespace) -> dict:
    methods = names_of("--methods", args.methods, METHODS)
    modes = names_of("--modes", args.modes, MODES)
    split = [method for method in methods if method in SPLIT_HEADS]
    if split and args.hidden % args.heads:
        raise UsageError(f"error: --hidden {args.hidden} does not split over --heads {args.heads} in "
                         f"{', '.join(split)}; pick --heads that divides --hidden, or a --hidden that is a multiple "
                         f"of --heads")
    if args.quick:
        conflicts = [option for option, given in (("--sizes", args.sizes), ("--rounds", args.rounds is not None))
                     if given]
        if conflicts:
            raise UsageError(f"error: --quick measures the default config in {QUICK_ROUNDS} rounds; drop "
                             f"{' and '.join(conflicts)}, or --quick")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        raise UsageError(f"error: --device must be cpu, cuda or cuda:N, got {args.device!r}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("error: --device cuda but torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    allocator = configure_allocator(args.allocator)
    if args.preset == "real" and args.sizes:
        raise UsageError("error: --sizes and --preset real are two different sweeps; pick one")
    base = Config(hidden=args.hidden, layers=args.layers, heads=args.heads, threads=args.threads, device=args.device,
                  knn_update=args.knn_update, conv_path=args.conv_path, **(REAL if args.preset == "real" else {}))
    if args.batch_size is not None:
        base = replace(base, batch_size=args.batch_size)
    results = []
    rounds = QUICK_ROUNDS if args.quick else ROUNDS if args.rounds is None else args.rounds
    for config in configs(base, args.sizes, args.preset):
        logger.info("measuring size=%s cross=%s", config.size, config.cross)
        results.extend(measure(config, methods, rounds, modes))
    report = {"config": {**asdict(base), "knn": KNN, "sizes": list(SIZES) if args.sizes else [],
                         "preset": args.preset, "sparse_budget": SPARSE_BUDGET, "modes": modes,
                         "allocator": allocator, "torch": torch.__version__,
                         "torch_geometric": torch_geometric.__version__,
                         "machine": platform.processor() or platform.machine(),
                         "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"},
              "results": results}
    print(format_table(results))
    if any(row["cross"] == "knn" for row in results):
        when = "before every block" if args.knn_update == "block" else "once per step, shared by the blocks"
        print(f"k-NN rows: k = {KNN}, graphfuse methods choose the edges {when} (--knn-update {args.knn_update})")
    return report
