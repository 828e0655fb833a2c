"""How the accuracy benchmark runs: each (task, method, seed) trained and scored, in this process or
in worker processes, the runs of a method aggregated over its seeds, and the reports written after
every task."""
from __future__ import annotations

import argparse
import collections
import itertools
import logging
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch_geometric
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from graphfuse.bench.accuracy import reports as accuracy_reports
from graphfuse.bench.accuracy.protocol import (
    DATA_SEED,
    METRICS,
    MONITOR,
    RECALL_KS,
    RERANK_K,
    TUNED,
    Method,
    TrainConfig,
    keep_modalities,
    method_task,
    model_kwargs,
)
from graphfuse.bench.accuracy.reports import sort_results
from graphfuse.bench.timing import configure_allocator
from graphfuse.data import PairGraphs
from graphfuse.datasets.tasks import TaskData, load_task
from graphfuse.models import create_model
from graphfuse.train import Trainer, featurize_dataset, ranking_metrics
from graphfuse.train.data import split_item

logger = logging.getLogger("graphfuse.bench")

#: Every training process keeps freed memory (see :func:`~graphfuse.bench.timing.configure_allocator`):
#: glibc's default hands it back to the kernel and pays page faults on every step, which cost the
#: runs here about 8 % of their time.
ALLOCATOR = "tuned"
#: Samples per batch when scoring (validation, test): more than in training, to spend less time per sample
#: (measured on fashion: graph-gat scores 1,824 samples/s in batches of 64, 1,970 in 128; graph-hgt's dense
#: blocks slow down above 128).
EVAL_BATCH_SIZE = 128
#: The keys of :func:`score_missing`'s scores.
MISSING = ("without", "only", "without_pair")


@dataclass
class Splits:
    """A task's featurised splits, shared by all its runs."""

    train: list[Any]
    val: list[Any]
    test: list[Any]


def featurize_task(task: TaskData) -> Splits:
    return Splits(*(featurize_dataset(task.builder, split, progress=False)
                    for split in (task.train, task.val, task.test)))


def reranked_retrieval_metrics(model: torch.nn.Module, trainer: Trainer, data: Sequence[Any], k: int = RERANK_K,
                               ks: Sequence[int] = RECALL_KS) -> dict[str, float]:
    """Query -> gallery ``R@k`` (percent) of a retrieval model with a re-ranker, after re-ranking.

    The dual encoder embeds both sides of every sample of ``data`` (featurised; sample ``i``'s
    query matches its gallery item), ``similarity = query @ gallery.T`` ranks the whole set as the
    gallery, and :meth:`GraphRetrievalModel.rerank` rescores each query's top ``k`` candidates
    jointly before :func:`~graphfuse.train.ranking_metrics` ranks the result.
    """
    outputs = trainer.predict(data)
    similarity = outputs["query"] @ outputs["gallery"].T
    node_sets = [split_item(item)[0] for item in data]
    reranked = model.rerank(similarity, PairGraphs(trainer.builder, node_sets), k=k)
    metrics = ranking_metrics(reranked, ks=tuple(ks))
    return {f"R@{cut}": metrics[f"R@{cut}"] for cut in ks}


def score_test(method: Method, model: torch.nn.Module, trainer: Trainer, data: Sequence[Any],
               kind: str) -> dict[str, float]:
    """The reported metrics of a trained model on ``data``, in percent."""
    if kind == "classification":
        metrics = trainer.evaluate(data)
        return {name: 100 * metrics[name] for name in METRICS[kind]}
    if method.reranks:
        return reranked_retrieval_metrics(model, trainer, data)
    metrics = trainer.evaluate(data)
    return {name: metrics[f"q2g/{name}"] for name in METRICS[kind]}


def score_missing(method: Method, trainer: Trainer, task: TaskData, data: Sequence[Any]) -> dict[str, dict]:
    """Test accuracy (percent) of a classification task with each modality removed at test time
    (``"without"``) and, with three modalities or more, with each one alone (``"only"``) and
    each pair removed (``"without_pair"``, keyed ``"a+b"``; with three modalities, the third
    one alone); empty for a single modality, for retrieval and for unimodal models."""
    modalities = list(task.builder.modalities)
    if task.kind != "classification" or len(modalities) < 2 or method.family == "unimodal":
        return {}

    def accuracy(keep: Collection[str]) -> float:
        return 100 * trainer.evaluate(keep_modalities(data, keep))["accuracy"]

    scores = {"without": {m: accuracy(set(modalities) - {m}) for m in modalities}}
    if len(modalities) > 2:
        scores["only"] = {m: accuracy({m}) for m in modalities}
        scores["without_pair"] = {}
        for pair in itertools.combinations(modalities, 2):
            rest = set(modalities) - set(pair)
            scores["without_pair"]["+".join(pair)] = scores["only"][rest.pop()] if len(rest) == 1 else accuracy(rest)
    return scores


def run_once(task: TaskData, method: Method, config: TrainConfig, splits: Splits, seed: int,
             test: bool = True) -> dict[str, Any]:
    """Trains ``method`` on ``task`` (as the method sees it, :func:`method_task`; ``splits`` featurised
    by that task's builder) with ``seed`` and scores the best validation epoch on the test split
    (``test=False``: reports the validation score alone and never reads the test split)."""
    task = method_task(task, method)
    torch.manual_seed(seed)
    model = create_model(method.model, **model_kwargs(method, task, config))
    monitor = MONITOR[task.kind]
    trainer = Trainer(model, task.builder, epochs=config.epochs, batch_size=config.batch_size,
                      eval_batch_size=EVAL_BATCH_SIZE, lr=config.lr, weight_decay=config.weight_decay, seed=seed,
                      progress=False, monitor=monitor, patience=config.patience, restore_best=True,
                      modality_dropout=method.modality_dropout)
    started = time.perf_counter()
    history = trainer.fit(splits.train, splits.val)
    train_seconds = time.perf_counter() - started
    values = [record[f"val_{monitor}"] for record in history]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    validation = {"val": float(max(values)), "best_epoch": int(np.argmax(values)), "epochs": len(history),
                  "train_seconds": train_seconds, "params": params, "seed": seed}
    if not test:
        return validation
    started = time.perf_counter()
    metrics = score_test(method, model, trainer, splits.test, task.kind)
    seconds = time.perf_counter() - started
    return {**validation, "metrics": metrics, "missing": score_missing(method, trainer, task, splits.test),
            "samples_per_second": len(splits.test) / seconds}


def chance_accuracy(task: TaskData) -> float | None:
    """The test accuracy (percent) of always predicting the test split's commonest class: what a
    model scores from inputs that say nothing of the label; ``None`` unless the task is
    classification with one class per sample."""
    if task.kind != "classification":
        return None
    targets = [split_item(item)[1] for item in task.test]
    if not targets or not all(isinstance(target, int) or (torch.is_tensor(target) and target.dim() == 0)
                              for target in targets):
        return None
    counts = collections.Counter(int(target) for target in targets)
    return 100 * max(counts.values()) / len(targets)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else 0.0)


def aggregate(method: Method, kind: str, runs: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    """One result row: every metric and cost over the seeds of ``runs`` (``None`` when it failed)."""
    result: dict[str, Any] = {"method": method.name, "family": method.family, "model": method.model,
                              "modality_dropout": method.modality_dropout}
    if error is not None:
        result.update(mean=None, std=None, seeds=[], metrics={}, params=None, params_std=None, train_seconds=None,
                      train_seconds_std=None, samples_per_second=None, samples_per_second_std=None, runs=runs,
                      error=error)
        return result
    metrics = {}
    for name in METRICS[kind]:
        seeds = [run["metrics"][name] for run in runs]
        mean, std = mean_std(seeds)
        metrics[name] = {"mean": mean, "std": std, "seeds": seeds}
    primary = metrics[METRICS[kind][0]]
    result.update(mean=primary["mean"], std=primary["std"], seeds=primary["seeds"], metrics=metrics)
    for key in MISSING:
        result[key] = {}
        for modality in runs[0].get("missing", {}).get(key, {}):
            seeds = [run["missing"][key][modality] for run in runs]
            mean, std = mean_std(seeds)
            result[key][modality] = {"mean": mean, "std": std, "seeds": seeds}
    for key in ("params", "train_seconds", "samples_per_second"):
        result[key], result[f"{key}_std"] = mean_std([run[key] for run in runs])
    result["params"] = round(result["params"])
    result["runs"] = runs
    return result


@contextmanager
def quiet_training(name: str = "graphfuse.train") -> Iterator[None]:
    """Silences the Trainer's per-epoch log lines (the progress bar and per-method lines replace them)."""
    train_logger = logging.getLogger(name)
    level = train_logger.level
    train_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        train_logger.setLevel(level)


def machine(threads: int) -> dict[str, Any]:
    """Where the runs train; ``threads``: torch threads of each run."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "threads": threads,
            "cpu_count": os.cpu_count(), "device": device}


def _guarded_run(task: TaskData, method: Method, config: TrainConfig, splits: Splits, seed: int,
                 test: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """:func:`run_once`, with a failure returned as its message (recorded; the command exits 1)."""
    try:
        return run_once(task, method, config, splits, seed, test), None
    except Exception as exception:  # noqa: BLE001
        logger.debug("run failed", exc_info=exception)
        return None, f"{type(exception).__name__}: {exception}"


_WORKER_TASKS: dict[tuple[str, bool], tuple[TaskData, dict[str | None, Splits]]] = {}


def start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    configure_allocator(ALLOCATOR)
    logging.getLogger("graphfuse.train").setLevel(logging.WARNING)


def training_pool(jobs: int, threads: int | None) -> ProcessPoolExecutor | None:
    """Where runs train: ``jobs`` worker processes of ``threads`` threads each (default 1), or, with
    ``jobs == 1``, this process (``None``); either way with ``ALLOCATOR``."""
    if jobs == 1:
        configure_allocator(ALLOCATOR)
        return None
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                               initargs=(threads or 1,))


def _worker_run(name: str, quick: bool, method: Method, config: TrainConfig, seed: int,
                test: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """One run in a worker process, which loads each task once and featurises it once per image encoder
    (the data is fixed)."""
    if (name, quick) not in _WORKER_TASKS:
        _WORKER_TASKS.clear()
        _WORKER_TASKS[name, quick] = load_task(name, quick=quick, seed=DATA_SEED), {}
    task, splits = _WORKER_TASKS[name, quick]
    return _guarded_run(task, method, config, _method_splits(task, method, splits), seed, test)


def _method_splits(task: TaskData, method: Method, featurised: dict[str | None, Splits]) -> Splits:
    """The splits ``method`` trains on: featurised by its task's builder, once per image encoder."""
    if method.image_encoder not in featurised:
        featurised[method.image_encoder] = featurize_task(method_task(task, method))
    return featurised[method.image_encoder]


Run = tuple[Method, TrainConfig, int]


def outcomes(pool: ProcessPoolExecutor | None, name: str, task: TaskData, quick: bool, runs: list[Run],
              test: bool = True) -> Iterator[tuple[Run, tuple[dict | None, str | None]]]:
    """Each ``(method, config, seed)`` of ``runs`` on the task registered as ``name`` with its
    outcome (of :func:`run_once` with ``test``), as it finishes: one after another in this process
    (``pool`` None), or as the worker processes finish them."""
    if pool is None:
        featurised: dict[str | None, Splits] = {}
        for method, config, seed in runs:
            splits = _method_splits(task, method, featurised)
            yield (method, config, seed), _guarded_run(task, method, config, splits, seed, test)
        return
    futures = {pool.submit(_worker_run, name, quick, method, config, seed, test): (method, config, seed)
               for method, config, seed in runs}
    for future in as_completed(futures):
        yield futures[future], future.result()


ConfigOf = Callable[[str, Method], TrainConfig]


def run_plans(args: argparse.Namespace, plans: dict[str, list[Method]], tasks: dict[str, TaskData],
              patterns: list[str] | None, started: float, config_of: ConfigOf, ranked: bool = True,
              reports: ModuleType = accuracy_reports) -> dict[str, Any]:
    """Trains and scores every planned (task, method, seed), each method with
    ``config_of(task_name, method)``, and writes the outputs; ``ranked`` orders each table by
    family and score (else in the order planned). ``reports`` formats and writes them: a module
    with ``format_table(name, task_report)`` and ``write_outputs(out, report, stem)``, called after
    every task (default: :mod:`graphfuse.bench.accuracy.reports`)."""
    out = Path(args.out)
    configs = {name: {method.name: config_of(name, method) for method in methods} for name, methods in plans.items()}
    if args.epochs is not None:
        configs = {name: {method: replace(config, epochs=args.epochs) for method, config in task_configs.items()}
                   for name, task_configs in configs.items()}
    report: dict[str, Any] = {
        "tasks": {},
        "config": {"tasks": list(plans), "methods": patterns, "seeds": args.seeds, "quick": args.quick,
                   "threads": args.threads, "jobs": args.jobs, "out": str(out), "data_seed": DATA_SEED,
                   "rerank_k": RERANK_K, "allocator": ALLOCATOR,
                   "evaluation": "test split with the weights of the best validation epoch",
                   "monitor": MONITOR, "settings": getattr(args, "settings_source", None),
                   "training": {name: {method: asdict(config) for method, config in task_configs.items()}
                                for name, task_configs in configs.items()}},
        "machine": machine(torch.get_num_threads() if args.jobs == 1 else args.threads or 1),
        "seconds": None,
        "failed": [],
    }
    total = sum(len(methods) for methods in plans.values()) * args.seeds
    bar = tqdm(total=total, desc="accuracy", unit="run", disable=args.no_progress)
    pool = training_pool(args.jobs, args.threads)
    # Log lines go through tqdm.write while the bar is shown, so that they do not break it.
    with quiet_training(), nullcontext() if args.no_progress else logging_redirect_tqdm(), bar, pool or nullcontext():
        for name, methods in plans.items():
            task = tasks[name]
            runs = [(method, configs[name][method.name], seed) for method in methods for seed in range(args.seeds)]
            finished: dict[tuple[str, int], tuple[dict | None, str | None]] = {}
            for (method, _, seed), outcome in outcomes(pool, name, task, args.quick, runs):
                finished[method.name, seed] = outcome
                bar.set_description(f"{name}/{method.name} seed {seed}")
                bar.update()
            results = []
            for method in methods:
                runs, errors = [], []
                for seed in range(args.seeds):
                    run, error = finished[method.name, seed]
                    if error is None:
                        runs.append(run)
                        continue
                    errors.append(error)
                    logger.error("%s / %s seed %d failed: %s", name, method.name, seed, error)
                    report["failed"].append({"task": name, "method": method.name, "seed": seed, "error": error})
                result = aggregate(method, task.kind, runs, errors[0] if errors else None)
                result["settings"] = {key: getattr(configs[name][method.name], key) for key in TUNED}
                results.append(result)
                if not errors:
                    logger.info("%s / %s: %s %.1f ± %.1f over %d seed(s), %.1f s per seed", name, method.name,
                                METRICS[task.kind][0], result["mean"], result["std"], len(runs),
                                result["train_seconds"])
            report["tasks"][name] = {
                "metric": METRICS[task.kind][0], "kind": task.kind, "description": task.description,
                "metrics": list(METRICS[task.kind]),
                "sizes": {"train": len(task.train), "val": len(task.val), "test": len(task.test)},
                "chance": chance_accuracy(task),
                "results": sort_results(results) if ranked else results}
            tqdm.write(reports.format_table(name, report["tasks"][name]) + "\n", file=sys.stdout)
            reports.write_outputs(out, report, getattr(args, "stem", "accuracy"))
            del tasks[name]
    report["seconds"] = time.perf_counter() - started
    print("\n\n".join(reports.format_table(name, task) for name, task in report["tasks"].items()))
    logger.info("results written to %s", out)
    if report["failed"]:
        logger.error("%d run(s) failed: %s", len(report["failed"]),
                     sorted({f"{f['task']}/{f['method']}" for f in report["failed"]}))
    return report
