"""Accuracy benchmark: every method trained on every task with several seeds, mean ± std.

    python -m graphfuse.bench accuracy                       # DEFAULT_TASKS; every method, 3 seeds
    python -m graphfuse.bench accuracy --tasks all           # also retrieval, redundancy and uniqueness
    python -m graphfuse.bench accuracy --quick --seeds 1 --tasks digits --methods 'graph-*'

Methods per task kind:

* classification: the graph methods ``graph-gat`` and ``graph-hgt`` (``GRAPH_METHODS``), every
  registered model of family ``"baseline"`` (all of them classify; those in ``ON_REQUEST`` only
  when ``--methods`` names them), and one ``unimodal-<type>``
  model per modality of the task's builder (``create_model("unimodal", modality=<type>)``;
  virtual node types get none).
* retrieval: ``graph-hgt+rerank`` (dual encoder + joint re-ranker, scored after re-ranking each
  query's top ``RERANK_K`` candidates), ``graph-hgt`` (``rerank=False``: the dual encoder alone)
  and the baselines ``early-fusion`` and ``transformer-fusion`` (``RETRIEVAL_BASELINES``).

Baselines and unimodal models that are not registered are left out with a warning.

Protocol. The data of a task is fixed: it is generated once with ``seed=0`` (``--quick`` asks the
task for its smaller splits) and featurised once, and every method and seed trains on the same
splits. Seed ``s`` (``--seeds N`` runs ``s = 0 .. N-1``) sets the model's initialisation
(``torch.manual_seed(s)`` before ``create_model``) and the training data order (``Trainer(seed=s)``),
so the spread over seeds is that of training, not of the data. The hyper-parameters of every
method come from the task's :class:`TrainConfig` in ``CONFIGS`` (``DEFAULT_CONFIGS`` for a task
not listed there). After every epoch the validation split is scored; the test split is scored with
the weights of the **best validation epoch** (``Trainer(restore_best=True)``, which keeps them in
memory), by the task's primary metric (``accuracy``; query -> gallery
``R@1``, of the dual encoder alone during validation).

Reported (all metrics in percent): classification accuracy and macro-F1; retrieval query ->
gallery Recall@1/5/10 over the whole test split as the gallery. ``params``: trainable parameters
after training. ``train s``: wall time of ``Trainer.fit`` per seed (training and per-epoch
validation). ``infer samples/s``: test samples over the wall time of scoring the test
split from featurised samples (batching, forward passes, metrics; with re-ranking for
``graph-hgt+rerank``). Each value is the mean over seeds ± the sample standard deviation
(``ddof=1``; 0 with one seed). For classification, every fused method is also scored with each
modality removed from the test samples (``without``, a column of the tables) and, with three
modalities or more, with each modality alone (``only``, in the JSON).

Tables list the graph methods first, then the baselines, then the unimodal models, each group by
mean primary metric, best first (failed methods last). A method whose run raises is recorded as
failed (``"error"`` in the JSON, ``failed: ...`` in the tables; every seed is tried), the other
methods go on, and the command exits with status 1.

Runs train ``--jobs`` at a time (default 2), each in a worker process of ``--threads`` threads
(default 1) that loads and featurises each task once; on two cores this nearly halves the wall
time of the tiny models here. Training times are then measured beside another run, alike for
every method. ``--jobs 1`` trains in this process.

Writes ``accuracy.md``, ``accuracy.csv`` (one row per task and method) and ``accuracy.png`` (one
panel per task) to ``--out`` after every task. The report (``--json``) is::

    {"tasks": {TASK: {"metric": "accuracy" | "R@1", "kind", "description", "metrics": [names],
                      "sizes": {"train", "val", "test"},
                      "results": [{"method", "family", "model", "mean", "std", "seeds": [per seed],
                                   "metrics": {NAME: {"mean", "std", "seeds"}},
                                   "params", "train_seconds", "samples_per_second" (means; "<key>_std"),
                                   "without", "only": {MODALITY: {"mean", "std", "seeds"}},
                                   "settings": {"lr", "hidden", "epochs"},
                                   "runs": [{"seed", "metrics", "params", "train_seconds",
                                             "samples_per_second", "epochs", "best_epoch", "val",
                                             "missing": {"without": {...}, "only": {...}}}],
                                   "error" (failed methods only; their statistics are null)}]}},
     "config": {arguments, "training": {TASK: TrainConfig}, ...}, "machine": {...},
     "seconds": total, "failed": [{"task", "method", "seed", "error"}]}
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_geometric
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

import graphfuse.datasets  # noqa: F401  (registers the package's tasks)
from graphfuse.bench.timing import configure_allocator
from graphfuse.data import PairGraphs
from graphfuse.datasets.fashion import DatasetNotInstalledError
from graphfuse.datasets.tasks import TaskData, list_tasks, load_task
from graphfuse.io import atomic_replace, atomic_write_text
from graphfuse.models import create_model, list_models
from graphfuse.train import Trainer, featurize_dataset, ranking_metrics
from graphfuse.train.data import split_item

logger = logging.getLogger("graphfuse.bench")

GRAPH_METHODS = ("graph-gat", "graph-hgt")
RETRIEVAL_GRAPH_MODEL = "graph-hgt"
RETRIEVAL_BASELINES = ("early-fusion", "transformer-fusion")
UNIMODAL_MODEL = "unimodal"
FAMILIES = ("graph", "baseline", "unimodal")
DATA_SEED = 0
#: Methods that run only when ``--methods`` names them: tensor fusion came last of all fusions on
#: digits, redundant-digits and fashion, and low-rank fusion (its factorised form) stays in the
#: default run; leaving it out keeps ``make bench`` within 10 minutes on two cores.
ON_REQUEST = ("tensor-fusion",)
#: What the README's main job runs; redundancy and uniqueness run with --tasks all (or by name).
DEFAULT_TASKS = ("synergy", "digits", "redundant-digits", "fashion", "match")
RERANK_K = 10
RECALL_KS = (1, 5, 10)
METRICS = {"classification": ("accuracy", "macro_f1"), "retrieval": tuple(f"R@{k}" for k in RECALL_KS)}
# The validation value that picks the checkpoint the test split is scored with.
MONITOR = {"classification": "accuracy", "retrieval": "q2g/R@1"}
LABELS = {"accuracy": "accuracy (%)", "macro_f1": "macro-F1 (%)", **{f"R@{k}": f"R@{k} (%)" for k in RECALL_KS}}
COLOURS = {"graph": "tab:blue", "baseline": "tab:orange", "unimodal": "tab:gray"}
DEFAULT_OUT = Path("results/accuracy")
#: The settings that ``tune`` searches, per task and method (see :func:`method_config`).
TUNED = ("lr", "hidden", "epochs")
#: The settings the package ships: ``python -m graphfuse.bench tune`` wrote them on this project's machine.
TUNED_SETTINGS = Path(__file__).with_name("tuned.json")
#: Every training process keeps freed memory (see :func:`~graphfuse.bench.timing.configure_allocator`):
#: glibc's default hands it back to the kernel and pays page faults on every step, which cost the
#: runs here about 8 % of their time.
ALLOCATOR = "tuned"
#: Samples per batch when scoring (validation, test): more than in training, to spend less time per sample
#: (measured on fashion: graph-gat scores 1,824 samples/s in batches of 64, 1,970 in 128; graph-hgt's dense
#: blocks slow down above 128).
EVAL_BATCH_SIZE = 128


@dataclass(frozen=True)
class TrainConfig:
    """Training and model hyper-parameters of one task, shared by all its methods.

    Graph models get ``hidden``, ``heads``, ``num_layers`` and ``dropout``; baselines and unimodal
    models get the same four (``num_layers`` in their own meaning).
    """

    epochs: int
    batch_size: int
    lr: float
    hidden: int = 32
    heads: int = 4
    num_layers: int = 2
    dropout: float = 0.1
    weight_decay: float = 0.01
    patience: int | None = None


# (default, --quick) per task name; DEFAULT_CONFIGS for a task not listed. Sized with the tasks' splits
# so that the default run (DEFAULT_TASKS) fits in 10 minutes on 2 CPU cores, --quick in 3.
DEFAULT_CONFIGS = (TrainConfig(epochs=10, batch_size=32, lr=3e-3), TrainConfig(epochs=5, batch_size=32, lr=3e-3))
CONFIGS: dict[str, tuple[TrainConfig, TrainConfig]] = {
    **{name: (TrainConfig(epochs=10, batch_size=64, lr=3e-3), TrainConfig(epochs=5, batch_size=64, lr=3e-3))
       for name in ("redundant-digits", "fashion")},
    # Each modality alone says nothing: the encoders learn what a digit is from the match label alone,
    # which takes some hundred steps before the validation score leaves chance.
    "match": (TrainConfig(epochs=12, batch_size=64, lr=3e-3), TrainConfig(epochs=6, batch_size=64, lr=3e-3)),
    "retrieval": (TrainConfig(epochs=10, batch_size=64, lr=2e-3, dropout=0.0),
                  TrainConfig(epochs=6, batch_size=64, lr=2e-3, dropout=0.0)),
}


def training_config(task: str, quick: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` of ``task`` (its quick one with ``quick``)."""
    default, fast = CONFIGS.get(task, DEFAULT_CONFIGS)
    return fast if quick else default


def method_config(task: str, method: str, quick: bool = False,
                  settings: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> TrainConfig:
    """The task's :class:`TrainConfig` with the settings ``tune`` chose for ``method`` on ``task``
    (``settings[task][method]``, e.g. ``{"lr": 3e-3, "hidden": 64, "epochs": 20}``), if any; the
    quick configs are never tuned."""
    config = training_config(task, quick)
    chosen = None if quick or settings is None else settings.get(task, {}).get(method)
    return config if chosen is None else replace(config, **chosen)


@dataclass
class Method:
    """One row of the tables: ``name`` as shown, the registered ``model`` it builds, and the
    ``options`` it adds to the task's keyword arguments of ``create_model``."""

    name: str
    family: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def reranks(self) -> bool:
        return bool(self.options.get("rerank", False))


def task_methods(task: TaskData) -> list[Method]:
    """Every method that applies to ``task`` (see the module docstring), unfiltered."""
    registered = set(list_models())
    if task.kind == "retrieval":
        methods = [Method(f"{RETRIEVAL_GRAPH_MODEL}+rerank", "graph", RETRIEVAL_GRAPH_MODEL,
                          {"rerank": True, "rerank_negatives": 2}),
                   Method(RETRIEVAL_GRAPH_MODEL, "graph", RETRIEVAL_GRAPH_MODEL, {"rerank": False})]
        missing = [name for name in RETRIEVAL_BASELINES if name not in registered]
        if missing:
            logger.warning("retrieval baselines %s are not registered; left out of task %r", missing, task.name)
        return methods + [Method(name, "baseline", name) for name in RETRIEVAL_BASELINES if name in registered]
    methods = [Method(name, "graph", name) for name in GRAPH_METHODS]
    methods += [Method(name, "baseline", name) for name in list_models(family="baseline")]
    if UNIMODAL_MODEL in registered:
        methods += [Method(f"unimodal-{modality}", "unimodal", UNIMODAL_MODEL, {"modality": modality})
                    for modality in task.builder.modalities]
    else:
        logger.warning("no %r model is registered; unimodal methods left out of task %r", UNIMODAL_MODEL, task.name)
    return methods


def select_methods(methods: Sequence[Method], patterns: Sequence[str] | None) -> list[Method]:
    """The ``methods`` whose name matches one of the shell-style ``patterns`` (without any: all but
    those in ``ON_REQUEST``)."""
    if not patterns:
        return [m for m in methods if m.name not in ON_REQUEST]
    return [m for m in methods if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]


def model_kwargs(method: Method, task: TaskData, config: TrainConfig) -> dict[str, Any]:
    """The keyword arguments of ``create_model(method.model, ...)`` on ``task``."""
    kwargs: dict[str, Any] = {"builder": task.builder, "task": task.kind, "hidden": config.hidden,
                              "heads": config.heads, "num_layers": config.num_layers, "dropout": config.dropout}
    if task.kind == "classification":
        kwargs["num_classes"] = task.num_classes
    else:
        kwargs.update(query=tuple(task.query), gallery=tuple(task.gallery))
    return {**kwargs, **method.options}


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


def keep_modalities(data: Sequence[Any], keep: Collection[str]) -> list[Any]:
    """``data`` (featurised ``(sample, target)`` items) with every sample cut down to its
    modalities in ``keep`` (a sample with none of them is left whole: a sample needs one)."""
    out = []
    for item in data:
        sample, target = split_item(item)
        kept = {key: value for key, value in sample.items() if key in keep}
        if kept:
            sample = kept
        out.append(sample if target is None else (sample, target))
    return out


def score_missing(method: Method, trainer: Trainer, task: TaskData, data: Sequence[Any]) -> dict[str, dict]:
    """Test accuracy (percent) of a classification task with each modality removed at test time
    (``"without"``) and, with three modalities or more, with each one alone (``"only"``); empty
    for a single modality, for retrieval and for unimodal models."""
    modalities = list(task.builder.modalities)
    if task.kind != "classification" or len(modalities) < 2 or method.family == "unimodal":
        return {}

    def accuracy(keep: Collection[str]) -> float:
        return 100 * trainer.evaluate(keep_modalities(data, keep))["accuracy"]

    scores = {"without": {m: accuracy(set(modalities) - {m}) for m in modalities}}
    if len(modalities) > 2:
        scores["only"] = {m: accuracy({m}) for m in modalities}
    return scores


def run_once(task: TaskData, method: Method, config: TrainConfig, splits: Splits, seed: int,
             test: bool = True) -> dict[str, Any]:
    """Trains ``method`` on ``task`` with ``seed`` and scores the best validation epoch on the test
    split (``test=False``: reports the validation score alone and never reads the test split)."""
    torch.manual_seed(seed)
    model = create_model(method.model, **model_kwargs(method, task, config))
    monitor = MONITOR[task.kind]
    trainer = Trainer(model, task.builder, epochs=config.epochs, batch_size=config.batch_size,
                      eval_batch_size=EVAL_BATCH_SIZE, lr=config.lr, weight_decay=config.weight_decay, seed=seed,
                      progress=False, monitor=monitor, patience=config.patience, restore_best=True)
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


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single value)."""
    array = np.asarray(values, dtype=float)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else 0.0)


def aggregate(method: Method, kind: str, runs: list[dict[str, Any]], error: str | None = None) -> dict[str, Any]:
    """One result row: every metric and cost over the seeds of ``runs`` (``None`` when it failed)."""
    result: dict[str, Any] = {"method": method.name, "family": method.family, "model": method.model}
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
    for key in ("without", "only"):
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


def sort_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Graph methods, then baselines, then unimodal models; each by mean, best first, failed last."""
    def key(row):
        failed = row["mean"] is None
        return FAMILIES.index(row["family"]), failed, 0.0 if failed else -row["mean"]

    return sorted(results, key=key)


# Output ---------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(name: str, task_report: Mapping[str, Any]) -> str:
    """The markdown table of one task (with the accuracy without each modality, where measured)."""
    metrics = task_report["metrics"]
    removed = list(dict.fromkeys(m for row in task_report["results"] for m in row.get("without") or {}))
    header = ["method", "family", *(LABELS.get(m, m) for m in metrics), *(f"without {m}" for m in removed),
              "params", "train s", "infer samples/s"]
    lines = [f"### {name} ({task_report['kind']}): {task_report['description']}".rstrip(": "), "",
             "| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for row in task_report["results"]:
        if "error" in row:
            message = row["error"] if len(row["error"]) <= 80 else row["error"][:77] + "..."
            cells = [f"failed: {_cell(message)}", *([""] * (len(header) - 3))]
        else:
            cells = [f"{row['metrics'][m]['mean']:.1f} ± {row['metrics'][m]['std']:.1f}" for m in metrics]
            without = row.get("without") or {}
            cells += [f"{without[m]['mean']:.1f} ± {without[m]['std']:.1f}" if m in without else "–" for m in removed]
            cells += [f"{row['params']:,}", f"{row['train_seconds']:.1f}", f"{row['samples_per_second']:,.0f}"]
        lines.append("| " + " | ".join([row["method"], row["family"], *cells]) + " |")
    return "\n".join(lines)


def format_report(report: Mapping[str, Any]) -> str:
    return "\n\n".join(format_table(name, task) for name, task in report["tasks"].items())


def write_markdown(path: Path, report: Mapping[str, Any]) -> None:
    config, machine = report["config"], report["machine"]
    done = len(report["tasks"])
    lines = ["# Accuracy benchmark", "",
             f"`python -m graphfuse.bench accuracy` — {config['seeds']} seed(s) per method"
             f"{', quick' if config['quick'] else ''}; data fixed per task (seed {config['data_seed']}), seeds "
             f"change initialisation and data order. Metrics in percent, mean ± sample std over seeds, on the "
             f"test split with the best validation epoch's weights. `train s`: Trainer.fit wall time per seed; "
             f"`infer samples/s`: test samples per second of scoring.", "",
             f"Machine: {machine['platform']}, torch {machine['torch']}, {config['jobs']} run(s) at a time of "
             f"{machine['threads']} thread(s) each, {machine['cpu_count']} CPU(s), device {machine['device']}.", "",
             ""]
    if done < len(config["tasks"]):
        lines += [f"Partial: {done} of {len(config['tasks'])} tasks done.", ""]
    atomic_write_text(path, "\n".join(lines) + format_report(report) + "\n")


def write_csv(path: Path, report: Mapping[str, Any]) -> None:
    names = list(dict.fromkeys(m for task in report["tasks"].values() for m in task["metrics"]))
    columns = ["task", "kind", "method", "family", "model", "metric", "num_seeds",
               *(f"{m}_{stat}" for m in names for stat in ("mean", "std")),
               "params", "params_std", "train_seconds", "train_seconds_std", "samples_per_second",
               "samples_per_second_std", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for name, task in report["tasks"].items():
        for row in task["results"]:
            line = {"task": name, "kind": task["kind"], "metric": task["metric"], "num_seeds": len(row["seeds"]),
                    "error": row.get("error", ""),
                    **{key: row[key] for key in ("method", "family", "model", "params", "params_std",
                                                 "train_seconds", "train_seconds_std", "samples_per_second",
                                                 "samples_per_second_std")}}
            for metric, values in row["metrics"].items():
                line[f"{metric}_mean"], line[f"{metric}_std"] = values["mean"], values["std"]
            writer.writerow(line)
    atomic_write_text(path, buffer.getvalue())


def plot(path: Path, report: Mapping[str, Any]) -> None:
    """One panel per task: horizontal bars of the primary metric's mean with the std as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    tasks = list(report["tasks"].items())
    heights = [max(1, len(task["results"])) for _, task in tasks]
    figure = Figure(figsize=(8, 1.2 * len(tasks) + 0.35 * sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(tasks), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for axis, (name, task) in zip(axes, tasks, strict=True):
        rows = task["results"]
        means = [row["mean"] or 0.0 for row in rows]
        errors = [row["std"] or 0.0 for row in rows]
        axis.barh(range(len(rows)), means, xerr=errors, color=[COLOURS[row["family"]] for row in rows],
                  capsize=3)
        for y, row in enumerate(rows):
            if "error" in row:
                axis.text(1, y, "failed", va="center", fontsize=8, color="tab:red")
        axis.set_yticks(range(len(rows)), [row["method"] for row in rows])
        axis.invert_yaxis()
        axis.set_xlim(0, 100)
        axis.set_xlabel(LABELS.get(task["metric"], task["metric"]))
        axis.set_title(f"{name} ({task['kind']})", fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    families = [f for f in FAMILIES if any(row["family"] == f for _, task in tasks for row in task["results"])]
    axes[0].legend(handles=[Patch(color=COLOURS[f], label=f) for f in families], loc="lower right", fontsize=8)
    with atomic_replace(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120)


def write_outputs(out: Path, report: Mapping[str, Any], stem: str = "accuracy") -> None:
    write_markdown(out / f"{stem}.md", report)
    write_csv(out / f"{stem}.csv", report)
    plot(out / f"{stem}.png", report)


# Command line ---------------------------------------------------------------------------------------
def _settings_path(value: str) -> Path | None:
    return None if value.lower() == "none" else Path(value)



def split_names(values: Sequence[str] | None) -> list[str] | None:
    """Space- and comma-separated arguments as one list."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


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


# Runs, in this process or in worker processes -------------------------------------------------------
def _guarded_run(task: TaskData, method: Method, config: TrainConfig, splits: Splits, seed: int,
                 test: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """:func:`run_once`, with a failure returned as its message (recorded; the command exits 1)."""
    try:
        return run_once(task, method, config, splits, seed, test), None
    except Exception as exception:  # noqa: BLE001
        logger.debug("run failed", exc_info=exception)
        return None, f"{type(exception).__name__}: {exception}"


_WORKER_TASKS: dict[tuple[str, bool], tuple[TaskData, Splits]] = {}


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
    """One run in a worker process, which loads and featurises each task once (the data is fixed)."""
    if (name, quick) not in _WORKER_TASKS:
        _WORKER_TASKS.clear()
        task = load_task(name, quick=quick, seed=DATA_SEED)
        _WORKER_TASKS[name, quick] = task, featurize_task(task)
    task, splits = _WORKER_TASKS[name, quick]
    return _guarded_run(task, method, config, splits, seed, test)


Run = tuple[Method, TrainConfig, int]


def outcomes(pool: ProcessPoolExecutor | None, name: str, task: TaskData, quick: bool, runs: list[Run],
              test: bool = True) -> Iterator[tuple[Run, tuple[dict | None, str | None]]]:
    """Each ``(method, config, seed)`` of ``runs`` on the task registered as ``name`` with its
    outcome (of :func:`run_once` with ``test``), as it finishes: one after another in this process
    (``pool`` None), or as the worker processes finish them."""
    if pool is None:
        splits = featurize_task(task)
        for method, config, seed in runs:
            yield (method, config, seed), _guarded_run(task, method, config, splits, seed, test)
        return
    futures = {pool.submit(_worker_run, name, quick, method, config, seed, test): (method, config, seed)
               for method, config, seed in runs}
    for future in as_completed(futures):
        yield futures[future], future.result()


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for accuracy.md, accuracy.csv and accuracy.png (default: {DEFAULT_OUT})")
    parser.add_argument("--settings", type=_settings_path, default=TUNED_SETTINGS if TUNED_SETTINGS.is_file() else None,
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


def load_settings(path: Path | None) -> dict[str, Any] | None:
    """The ``{task: {method: {"lr", "hidden", "epochs"}}}`` choices of a ``tune`` report at
    ``path`` (``None``: every method trains with its task's :class:`TrainConfig`)."""
    if path is None:
        return None
    try:
        report = json.loads(Path(path).read_text())
        chosen = {task: {method: {key: trial["chosen"][key] for key in TUNED} for method, trial in methods.items()}
                  for task, methods in report["tasks"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SystemExit(f"error: --settings '{path}' is not a readable report of 'python -m graphfuse.bench tune' "
                         f"({type(error).__name__}: {error}); rerun tune, or pass --settings none") from None
    return chosen


def load_tasks(names: Sequence[str], quick: bool) -> dict[str, TaskData]:
    """The tasks ``names``; one whose data is not installed here (e.g. ``fashion`` without Debian's
    ``dataset-fashion-mnist``) is skipped with its message."""
    tasks = {}
    for name in names:
        try:
            tasks[name] = load_task(name, quick=quick, seed=DATA_SEED)
        except DatasetNotInstalledError as error:
            logger.warning("task %r skipped: %s", name, error)
    return tasks


def execute(args: argparse.Namespace, methods_of: Callable[[TaskData], list[Method]],
            settings_of: Callable[[Method], str] = lambda method: method.name, ranked: bool = True) -> dict[str, Any]:
    """Checks the arguments, then trains and scores ``methods_of(task)`` (filtered by
    ``--methods``) on every task of ``--tasks``, each method with the tuned settings of
    ``settings_of(method)`` (see ``--settings``); ``ranked`` as in :func:`_run`."""
    started = time.perf_counter()
    if args.seeds < 1:
        raise SystemExit(f"error: --seeds must be at least 1, got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"error: --epochs must be at least 1, got {args.epochs}")
    if args.jobs < 1:
        raise SystemExit(f"error: --jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"error: --threads must be at least 1, got {args.threads}")
    registered = list_tasks()
    names = split_names(args.tasks) or list(DEFAULT_TASKS)
    if names == ["all"]:
        names = registered
    if not names:
        raise SystemExit("error: no tasks are registered (graphfuse.datasets.tasks.register_task)")
    unknown = [name for name in names if name not in registered]
    if unknown:
        raise SystemExit(f"error: unknown tasks {unknown}; registered: {registered}")
    patterns = split_names(args.methods)
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SystemExit(f"error: --out folder '{args.out}' cannot be created: {error}") from None

    tasks = load_tasks(names, args.quick)
    available = {name: methods_of(task) for name, task in tasks.items()}
    plans = {name: select_methods(methods, patterns) for name, methods in available.items()}
    offered = sorted({m.name for methods in available.values() for m in methods})
    for pattern in patterns or []:
        if not any(fnmatch.fnmatchcase(m, pattern) for m in offered):
            raise SystemExit(f"error: --methods pattern {pattern!r} matches no method of the tasks {names}; "
                             f"their methods: {offered}")
    for name in tasks:
        if not plans[name]:
            logger.info("task %r: no method matches %s; skipped", name, patterns)
    plans = {name: methods for name, methods in plans.items() if methods}

    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        settings = load_settings(args.settings)
        args.settings_source = None if settings is None else str(args.settings)
        return _run(args, plans, tasks, patterns, started,
                    lambda task, method: method_config(task, settings_of(method), args.quick, settings), ranked)
    finally:
        torch.set_num_threads(threads)


ConfigOf = Callable[[str, Method], TrainConfig]


def _run(args: argparse.Namespace, plans: dict[str, list[Method]], tasks: dict[str, TaskData],
         patterns: list[str] | None, started: float, config_of: ConfigOf, ranked: bool = True) -> dict[str, Any]:
    """Trains and scores every planned (task, method, seed), each method with
    ``config_of(task_name, method)``, and writes the outputs; ``ranked`` orders each table by
    family and score (else in the order planned)."""
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
                "results": sort_results(results) if ranked else results}
            tqdm.write(format_table(name, report["tasks"][name]) + "\n", file=sys.stdout)
            write_outputs(out, report, getattr(args, "stem", "accuracy"))
            del tasks[name]
    report["seconds"] = time.perf_counter() - started
    print(format_report(report))
    logger.info("results written to %s", out)
    if report["failed"]:
        logger.error("%d run(s) failed: %s", len(report["failed"]),
                     sorted({f"{f['task']}/{f['method']}" for f in report["failed"]}))
    return report

