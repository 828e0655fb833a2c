"""Ablation benchmark: the default graph model with each of its techniques turned off (or, for
those off by default, on) in turn.

    python -m graphfuse.bench ablation                        # the accuracy tasks, graph-gat, 3 seeds
    python -m graphfuse.bench ablation --model graph-hgt --tasks digits redundant-digits

Every variant is ``create_model(--model, ...)`` with the task's training settings and one option
changed from the default (see ``ABLATIONS``); ``none`` turns all of them off at once (the graph
models as they were before balanced training). Scored as ``accuracy`` scores (same protocol,
outputs and options), with the test accuracy without each modality beside it. Tables keep the
order of ``ABLATIONS``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from graphfuse.bench import accuracy
from graphfuse.bench.accuracy import Method
from graphfuse.bench.checks import UsageError
from graphfuse.datasets.tasks import TaskData
from graphfuse.models import list_models, model_family

DEFAULT_MODEL = "graph-gat"
DEFAULT_OUT = Path("results/ablation")
#: (name, the options that differ from the default model); "none" turns every technique off.
ABLATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default", {}),
    ("no late-then-joint blocks", {"unimodal_layers": 0}),
    ("with modality context", {"modality_context": True}),
    ("mean pooling", {"pool": "mean"}),
    ("concat readout", {"fuse": "concat"}),
    ("attention over types", {"fuse": "attention"}),
    ("no unimodal heads", {"unimodal_weight": 0.0}),
    ("no unimodal ensemble", {"unimodal_ensemble": False}),
    ("ungated votes and drop-out", {"unimodal_ensemble": True}),
    ("no modality drop-out", {"modality_dropout": 0.0}),
    ("modality drop-out 0.3", {"modality_dropout": 0.3}),
    ("with OGM-GE", {"gradient_modulation": "ogm-ge"}),
    ("none", {"unimodal_layers": 0, "modality_context": False, "pool": "mean", "fuse": "attention",
              "unimodal_weight": 0.0, "unimodal_ensemble": False, "modality_dropout": 0.0}),
)


def ablation_methods(model: str):
    def methods(task: TaskData) -> list[Method]:
        if task.kind != "classification":
            return []
        return [Method(name, "graph", model, dict(options)) for name, options in ABLATIONS]

    return methods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    accuracy.add_arguments(parser, DEFAULT_OUT, "folder for ablation.md, ablation.csv and ablation.png")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"the graph model to ablate (default: {DEFAULT_MODEL}; one of {list_models('graph-*')})")


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.model not in list_models() or model_family(args.model) != "graph":
        raise UsageError(f"error: --model must be a graph model, one of {list_models(family='graph')}; got "
                         f"{args.model!r}")
    args.stem = "ablation"
    # Every variant trains with the settings tuned for the ablated model.
    return accuracy.execute(args, ablation_methods(args.model), lambda method: method.model, ranked=False,
                            runs="classification tasks")
