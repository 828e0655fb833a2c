"""Peak memory of a 10-minute recording: one sample of 60,000 audio frames (10 ms hop) with a few
words and an image beside it, joined by sparse cross-modal edges, is featurised, batched, trained
for one step and predicted, each model in a fresh process whose peak resident set size
(``ru_maxrss``, imports included) is reported.

    .venv/bin/python benchmarks/long_recording.py                        # graph-gat, -gat-knn, -gcn, -hgt
    .venv/bin/python benchmarks/long_recording.py --models graph-gat,graph-gcn --frames 120000 --json out.json

The cross-modal edges: words <-> the frames they span (``TemporalAlignment``), words <-> patches
(``"full"``: 9 x 49), patches <-> frames (``StridedBipartite(8)``); the graph has about 720,000
edges. The waveform is synthetic (seeded noise). Prints one JSON object and writes it to ``--json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from graphfuse import AudioModality, CrossEdges, GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.bench.checks import UsageError, check_writable_file, names_of
from graphfuse.data import StridedBipartite, TemporalAlignment
from graphfuse.io import atomic_write_text
from graphfuse.models import create_model, list_models
from graphfuse.train import Trainer

MODELS = ("graph-gat", "graph-gat-knn", "graph-gcn", "graph-hgt")
WORDS = "the quick brown fox jumps over the lazy dog".split()
SAMPLE_RATE, HOP, WINDOW = 16000, 0.010, 0.025


def long_recording(frames: int = 60_000) -> tuple[GraphBuilder, dict]:
    """The builder and one raw sample: ``frames`` audio frames (seeded noise), the words spread
    evenly over the recording, a 28 x 28 image."""
    builder = GraphBuilder(
        {"text": TextModality(Tokenizer.from_corpus([" ".join(WORDS)]), spans=True),
         "image": ImageModality(patch_size=4, channels=1),
         "audio": AudioModality(sample_rate=SAMPLE_RATE, hop_length=HOP, win_length=WINDOW)},
        cross=[CrossEdges("text", "audio", TemporalAlignment(window=0.05)), CrossEdges("text", "image", "full"),
               CrossEdges("image", "audio", StridedBipartite(budget=8))])
    seconds = (frames - 1) * HOP + WINDOW
    generator = torch.Generator().manual_seed(0)
    step = seconds / len(WORDS)
    sample = {"text": {"text": " ".join(WORDS), "spans": [[i * step, (i + 1) * step] for i in range(len(WORDS))]},
              "image": torch.rand(28, 28, generator=generator),
              "audio": torch.randn(round(seconds * SAMPLE_RATE), generator=generator) * 0.1}
    return builder, sample


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model_name: str, frames: int, train: bool = True) -> dict:
    """Featurise, batch, train one step (``train``) and predict ``model_name`` (default sizes) on
    the long recording, in this process; the peak RSS after imports and after each stage."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    record = {"model": model_name, "frames": frames, "rss_mb": {"imports": peak_rss_mb()}}
    builder, sample = long_recording(frames)
    nodes = builder.featurize(sample)
    del sample
    record["rss_mb"]["featurize"] = peak_rss_mb()
    batch = builder.collate([nodes])
    record["nodes"] = batch.num_nodes
    record["edges"] = batch.num_edges
    del batch
    record["rss_mb"]["collate"] = peak_rss_mb()
    model = create_model(model_name, builder=builder, task="classification", num_classes=2, seed=0)
    trainer = Trainer(model, builder, epochs=1, batch_size=1, progress=False)
    if train:
        trainer.fit([(nodes, 1)])
        record["rss_mb"]["train_step"] = peak_rss_mb()
    logits = trainer.predict([nodes])["logits"]
    if not bool(torch.isfinite(logits).all()):
        raise FloatingPointError(f"{model_name} predicted non-finite logits on the long recording: {logits}")
    record["rss_mb"]["predict"] = record["peak_rss_mb"] = peak_rss_mb()
    record["seconds"] = time.perf_counter() - started
    return record


def frame_count(text: str) -> int:
    """An argparse type: a whole number of audio frames, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME",
                        help=f"graph models, separated by commas or spaces (default: {','.join(MODELS)})")
    parser.add_argument("--frames", type=frame_count, default=60_000)
    parser.add_argument("--no-train", dest="train", action="store_false", help="featurise, batch and predict only")
    parser.add_argument("--json", type=Path, help="also write the results to this path")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process of one model
    args = parser.parse_args(argv)
    try:  # before any model runs, as python -m graphfuse.bench does
        args.models = names_of("--models", args.models, list_models(family="graph"))
        if args.json is not None:
            check_writable_file("--json", args.json)
    except UsageError as error:
        parser.error(str(error).removeprefix("error: "))
    if args.one:
        return measure(args.models[0], args.frames, args.train)
    runs = []
    for name in args.models:  # a process each, so that each peak is that model's alone
        command = [sys.executable, __file__, "--one", "--models", name, "--frames", str(args.frames)]
        done = subprocess.run(command + ([] if args.train else ["--no-train"]), capture_output=True, text=True,
                              check=False)
        if done.returncode:
            raise RuntimeError(f"{name} failed on the long recording:\n{done.stderr}")
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    report = {"config": {"frames": args.frames, "train_step": args.train, "threads": 1,
                         "machine": platform.machine(), "python": platform.python_version(),
                         "torch": torch.__version__}, "runs": runs}
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    print(json.dumps(main()))
