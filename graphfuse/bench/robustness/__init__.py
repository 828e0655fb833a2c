"""Robustness benchmark: every method trained with and without modality drop-out, and scored with
each modality, and each pair of modalities, removed from the test samples.

Examples::

    python -m graphfuse.bench robustness                     # the classification tasks, 3 seeds
    python -m graphfuse.bench robustness --quick             # QUICK_TASKS, small splits, 2 seeds
    python -m graphfuse.bench robustness --tasks digits --methods 'graph-*' 'early-fusion*' 'unimodal-*'

Methods, per classification task of ``--tasks`` (default: those of the accuracy benchmark's
``DEFAULT_TASKS``): every fused method of ``python -m graphfuse.bench accuracy`` (the graph
methods and the baselines) twice, ``METHOD`` trained without modality drop-out and
``METHOD+drop-out`` with it (:class:`~graphfuse.train.ModalityDropout`, probability
``--modality-dropout``, by default that of the graph models, the Trainer's ``modality_dropout``),
and one ``unimodal-<modality>`` model per modality (drop-out cannot apply to a single modality).
Both settings of a method use its tuned settings.

``--quick`` trains on the tasks' small splits with short training, ``QUICK_SEEDS`` seeds unless
``--seeds`` says otherwise, and on ``QUICK_TASKS`` unless ``--tasks`` says otherwise: those where
each modality but the marker text predicts the label alone (on ``synergy`` and ``match`` only the
pair does, so every method falls to chance without either modality).

Protocol, options and outputs otherwise as ``accuracy``'s (same fixed data, seeds, training
settings and best-validation-epoch weights): each fused model is scored on the whole test split,
with each modality removed (``without``), with each pair removed (``without_pair``) and with each
modality alone (``only``), every sample keeping at least one modality.

After each task's table, its **claims**: for each modality removed at test time, the best graph
method with drop-out against the best unimodal model of the modalities that remain, and its loss
(accuracy with every modality minus accuracy without it) against early fusion's with drop-out;
and for each graph method, what drop-out costs with nothing removed (``DROPOUT_COST_LIMIT``
points at most). Each claim says whether it holds on the means; the report's ``claims`` list
them all.

Writes ``robustness.md``, ``robustness.csv`` (one row per task, method and test condition) and
``robustness.png`` (a panel per task: accuracy per test condition, with drop-out as bars and
without as markers, the best unimodal model of what remains as a dashed line) to ``--out``.
The report (``--json``) is that of ``accuracy`` with ``"claims"`` added to each task and to the
whole.
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any

from graphfuse.bench import accuracy
from graphfuse.bench.accuracy import Method
from graphfuse.bench.checks import UsageError
from graphfuse.bench.robustness import reports
from graphfuse.bench.robustness.claims import DROPOUT_COST_LIMIT, task_claims
from graphfuse.datasets.tasks import TaskData
from graphfuse.models import GraphFusionModel

DEFAULT_OUT = Path("results/robustness")
#: The drop-out probability of the graph models, the default of ``--modality-dropout``.
DEFAULT_DROPOUT = inspect.signature(GraphFusionModel).parameters["modality_dropout"].default
DROPOUT_SUFFIX = "+drop-out"
SEEDS, QUICK_SEEDS = 3, 2
QUICK_TASKS = ("digits", "redundant-digits", "fashion")

__all__ = ["DEFAULT_DROPOUT", "DEFAULT_OUT", "DROPOUT_COST_LIMIT", "DROPOUT_SUFFIX", "QUICK_SEEDS", "QUICK_TASKS",
           "SEEDS", "add_arguments", "main", "robustness_methods", "task_claims"]


def robustness_methods(probability: float):
    """The methods of a task: each fused method of the accuracy benchmark without and with drop-out
    of ``probability``, then the unimodal models; none for a task that is not classification or
    has a single modality."""
    def methods(task: TaskData) -> list[Method]:
        if task.kind != "classification" or len(task.builder.modalities) < 2:
            return []
        chosen = [m for m in accuracy.task_methods(task) if m.image_encoder is None]
        fused = [m for m in chosen if m.family != "unimodal"]
        pairs = [[Method(m.name, m.family, m.model, dict(m.options), modality_dropout=0.0),
                  Method(m.name + DROPOUT_SUFFIX, m.family, m.model, dict(m.options), tuned_as=m.name,
                         modality_dropout=probability)] for m in fused]
        return [m for pair in pairs for m in pair] + [m for m in chosen if m.family == "unimodal"]

    return methods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    accuracy.add_arguments(parser, DEFAULT_OUT, "folder for robustness.md, robustness.csv and robustness.png")
    parser.set_defaults(seeds=None)
    parser._option_string_actions["--seeds"].help = (
        f"seeds 0..N-1 per method: each changes initialisation and data order, not the data (default: {SEEDS}, "
        f"{QUICK_SEEDS} with --quick)")
    parser._option_string_actions["--tasks"].help += f"; with --quick: {' '.join(QUICK_TASKS)}"
    parser.add_argument("--modality-dropout", type=float, default=DEFAULT_DROPOUT, metavar="P",
                        help=f"probability that training drops each modality of a sample, for the '+drop-out' "
                             f"rows (default: {DEFAULT_DROPOUT}, the graph models' own)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    if not 0 < args.modality_dropout < 1:
        raise UsageError(f"error: --modality-dropout must lie strictly between 0 and 1, got {args.modality_dropout}")
    if args.seeds is None:
        args.seeds = QUICK_SEEDS if args.quick else SEEDS
    if args.quick and args.tasks is None:
        args.tasks = list(QUICK_TASKS)
    args.stem = "robustness"
    report = accuracy.execute(args, robustness_methods(args.modality_dropout), ranked=False, reports=reports,
                              runs="classification tasks of two modalities or more")
    for name, task in report["tasks"].items():
        task["claims"] = task_claims(name, task)
    report["claims"] = [claim for task in report["tasks"].values() for claim in task["claims"]]
    return report
