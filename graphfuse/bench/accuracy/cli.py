"""``python -m graphfuse.bench accuracy``: its options, their checks, and the plan of (task, method)
runs they ask for."""
from __future__ import annotations

import argparse
import fnmatch
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from graphfuse.bench.accuracy import reports as accuracy_reports
from graphfuse.bench.accuracy.protocol import (
    DEFAULT_TASKS,
    ON_REQUEST,
    TUNED_SETTINGS,
    Method,
    load_settings,
    load_tasks,
    method_config,
    select_methods,
    task_methods,
)
from graphfuse.bench.accuracy.runner import run_plans
from graphfuse.bench.checks import UsageError, check_positive, names_of
from graphfuse.datasets.tasks import TaskData, list_tasks

logger = logging.getLogger("graphfuse.bench")

DEFAULT_OUT = Path("results/accuracy")


def _settings_path(value: str) -> Path | None:
    return None if value.lower() == "none" else Path(value)


def split_names(values: Sequence[str] | None, option: str = "--methods") -> list[str] | None:
    """Space- and comma-separated arguments of ``option`` as one list (``None`` when not given);
    refuses an empty list or an empty name."""
    return None if values is None else names_of(option, values)


def task_names(values: Sequence[str] | None) -> list[str]:
    """The tasks ``--tasks`` names (default: ``DEFAULT_TASKS``; ``all``: every registered task);
    refuses an unknown task, an empty list or an empty name."""
    registered = list_tasks()
    if not registered:
        raise UsageError("error: no tasks are registered (graphfuse.datasets.tasks.register_task)")
    if values is None:
        return list(DEFAULT_TASKS)
    names = names_of("--tasks", values, [*registered, "all"])
    return registered if "all" in names else names


def add_arguments(parser: argparse.ArgumentParser, out: Path = DEFAULT_OUT,
                  out_help: str = "folder for accuracy.md, accuracy.csv and accuracy.png",
                  settings: bool = True) -> None:
    """The options of ``accuracy`` and of the commands built on it, whose ``--out`` (``out``) holds
    what ``out_help`` says; ``--settings`` only for those that train with tuned settings
    (``settings``)."""
    parser.add_argument("--tasks", nargs="+", metavar="TASK",
                        help=f"tasks to run, space- or comma-separated, or 'all' for every registered task "
                             f"(default: {' '.join(DEFAULT_TASKS)})")
    parser.add_argument("--methods", nargs="+", metavar="PATTERN",
                        help="shell-style patterns of the methods to run, e.g. 'graph-*' 'unimodal-*', or '*' "
                             f"for all (default: every method that applies to each task but {', '.join(ON_REQUEST)})")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds 0..N-1 per method: each changes initialisation and data order, not the data "
                             "(default: 3)")
    parser.add_argument("--quick", action="store_true", help="the tasks' small splits and quick training configs")
    parser.add_argument("--epochs", type=int,
                        help="train every method this many epochs instead of its task's configured number (e.g. "
                             "to check that a ranking holds with longer training)")
    parser.add_argument("--out", type=Path, default=out, help=f"{out_help} (default: {out})")
    if settings:
        parser.add_argument("--settings", type=_settings_path,
                            default=TUNED_SETTINGS if TUNED_SETTINGS.is_file() else None,
                            help="a report of 'python -m graphfuse.bench tune' whose chosen learning rate, width and "
                                 "epochs each method trains with, or 'none' for the tasks' shared settings (default: "
                                 "the settings shipped with graphfuse, graphfuse/bench/tuned.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int,
                        help="torch.set_num_threads per process (default: torch's own with --jobs 1, else 1)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="runs trained at once, each in its own process (default: 2, or 1 on one core); "
                             "training times are then measured side by side with another run")


def main(args: argparse.Namespace) -> dict[str, Any]:
    return execute(args, task_methods)


def execute(args: argparse.Namespace, methods_of: Callable[[TaskData], list[Method]],
            settings_of: Callable[[Method], str] = lambda method: method.settings_name,
            ranked: bool = True, reports: ModuleType = accuracy_reports, runs: str = "every task") -> dict[str, Any]:
    """Checks the arguments, then trains and scores ``methods_of(task)`` (filtered by
    ``--methods``) on every task of ``--tasks``, each method with the tuned settings of
    ``settings_of(method)`` (see ``--settings``); ``ranked`` and ``reports`` as in
    :func:`~graphfuse.bench.accuracy.runner.run_plans`. ``runs`` says in words which tasks
    ``methods_of`` has methods for: a task of ``--tasks`` that it has none for is refused with it
    (``--tasks all`` skips such tasks)."""
    started = time.perf_counter()
    check_positive(args, ("seeds", "epochs", "jobs", "threads"))
    names = task_names(args.tasks)
    patterns = split_names(args.methods)
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"error: --out folder '{args.out}' cannot be created: {error}") from None

    tasks = load_tasks(names, args.quick)
    available = {name: methods_of(task) for name, task in tasks.items()}
    unrunnable = [name for name, methods in available.items() if not methods]
    if unrunnable and not (args.tasks is not None and "all" in names_of("--tasks", args.tasks)):
        named = ", ".join(f"{name!r} ({tasks[name].kind}, {len(tasks[name].builder.modalities)} modalities)"
                          for name in unrunnable)
        raise UsageError(f"error: python -m graphfuse.bench {args.command} runs {runs}; --tasks names {named}; name "
                         f"tasks it runs, e.g. {', '.join(DEFAULT_TASKS)}")
    plans = {name: select_methods(methods, patterns) for name, methods in available.items()}
    offered = sorted({m.name for methods in available.values() for m in methods})
    for pattern in patterns or []:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in offered):
            raise UsageError(f"error: --methods pattern {pattern!r} matches no method of the tasks {names}; "
                             f"their methods: {offered}")
    for name in tasks:
        if name in unrunnable:
            logger.info("task %r: python -m graphfuse.bench %s runs %s; skipped", name, args.command, runs)
        elif not plans[name]:
            logger.info("task %r: no method matches %s; skipped", name, patterns)
    plans = {name: methods for name, methods in plans.items() if methods}

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        settings = load_settings(args.settings)
        args.settings_source = None if settings is None else str(args.settings)
        return run_plans(args, plans, tasks, patterns, started,
                    lambda task, method: method_config(task, settings_of(method), args.quick, settings), ranked,
                    reports)
    finally:
        torch.set_num_threads(threads)
