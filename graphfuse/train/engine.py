"""The training engine: fit / evaluate / predict for any graphfuse model with a task.

One process or many (DDP under ``torchrun``); the same code path either way, with a
:class:`~torch.utils.data.distributed.DistributedSampler` whose shares are a single process's
batches split across ranks, so N processes with batch size B/N step like one with B.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.parameter import UninitializedParameter
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from graphfuse.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from graphfuse.checks import check_choice, check_int, check_number, check_probability
from graphfuse.config import short_repr
from graphfuse.data import GraphBuilder, PairGraphs
from graphfuse.deprecation import GraphfuseDeprecationWarning
from graphfuse.io import ensure_writable_dir
from graphfuse.nn.unimodal import MultimodalOutput
from graphfuse.train import distributed as ddp
from graphfuse.train.balance import GradientModulation
from graphfuse.train.callbacks import Callback, check_callbacks
from graphfuse.train.data import EpochSampler, GraphCollate, IndexedDataset, check_dataset
from graphfuse.train.optim import GroupsSpec, OptimizerSpec, build_optimizer, check_optimizer
from graphfuse.train.tasks import TASKS, ClassificationTask, Task, check_task_fits, create_task

log = logging.getLogger("graphfuse.train")

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("fp32", "bf16")
CHECKPOINT_NAMES = ("last.pt", "best.pt")
SMALLER_IS_BETTER = ("loss", "mse", "mae", "median_rank")


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN or infinite loss (or gradient norm); the weights were not updated
    by the step that produced it."""


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's (every device's) random generators."""
    import numpy

    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Asks torch for deterministic kernels (a warning, not an error, for an op that has none) and
    turns off cuDNN's autotuner, which picks kernels by timing."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled and torch.backends.cudnn.benchmark


def _schedule(name: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress)) if name == "cosine" else 1.0 - progress

    return factor


def _rng_state() -> dict[str, Any]:
    """Every generator's state in types a ``weights_only`` load accepts (tensors, ints, tuples)."""
    import numpy

    _, keys, position, has_gauss, cached_gaussian = numpy.random.get_state()
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(),
           "numpy": (torch.from_numpy(keys.astype("int64")), position, has_gauss, cached_gaussian)}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng_state(rng: dict[str, Any]) -> None:
    import numpy

    if "torch" in rng:
        torch.set_rng_state(rng["torch"].cpu())
    if "python" in rng:
        random.setstate(rng["python"])
    if "numpy" in rng:
        keys, position, has_gauss, cached_gaussian = rng["numpy"]
        numpy.random.set_state(("MT19937", keys.cpu().numpy().astype("uint32"), position, has_gauss, cached_gaussian))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])


def epoch_summary(record: dict[str, Any], epochs: int, improved: bool = False) -> str:
    """One line of an epoch's record: ``epoch 3/10  train_loss 0.412  val_accuracy 0.9125 *  1.2 s``
    (``*`` marks the best epoch so far)."""
    values = "  ".join(f"{key} {value:.4g}" for key, value in record.items() if key not in ("epoch", "seconds", "lr"))
    width = len(str(epochs))
    return (f"epoch {record['epoch'] + 1:>{width}}/{epochs}  {values}  lr {record['lr']:.2g}"
            f"{'  *' if improved else ''}  {record['seconds']:.1f} s")


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _resolve_task(model: torch.nn.Module, task: str | Task | None) -> Task:
    if task is None:
        legacy = getattr(model, "task", None)
        if isinstance(legacy, Task):
            warnings.warn("a model carrying its Task as model.task is deprecated: pass it to the Trainer, "
                          "Trainer(model, builder, task=...)", GraphfuseDeprecationWarning, stacklevel=3)
            return legacy
        task = getattr(model, "task_name", None)
        if task is None:
            raise TypeError(f"Trainer needs the task {type(model).__name__} is trained for: pass task= a registered "
                            f"name ({TASKS.names()}) or a graphfuse.train.Task (e.g. ClassificationTask(model.head)); "
                            f"models from graphfuse.models.create_model name theirs as model.task_name")
    else:
        check_task_fits(task, model, "Trainer")
    return create_task(task, model)


def _resolve_builder(model: torch.nn.Module, builder: GraphBuilder | None) -> GraphBuilder:
    if builder is None:
        builder = getattr(model, "builder", None)
        if builder is None:
            raise TypeError("Trainer needs the GraphBuilder that turns samples into graphs: Trainer(model, builder)")
        warnings.warn("Trainer(model) taking the builder the model remembers is deprecated: pass it, "
                      "Trainer(model, builder)", GraphfuseDeprecationWarning, stacklevel=3)
    if not isinstance(builder, GraphBuilder):
        raise TypeError(f"Trainer 'builder' must be the GraphBuilder of the data, got {type(builder).__name__}")
    return builder


def _training_state_problem(checkpoint: dict[str, Any]) -> str | None:
    """What is wrong with the training state of a checkpoint ``fit`` resumes from, if anything: the
    entries it reads and their types."""
    trainer = checkpoint["trainer"]
    if not isinstance(trainer, dict):
        return f"'trainer' is a {type(trainer).__name__}, not a dict"
    for key, types in (("epoch", int), ("step", int), ("bad_epochs", int), ("best", (int, float, type(None))),
                       ("history", list)):
        if not isinstance(trainer.get(key), types) or isinstance(trainer.get(key), bool):
            return f"the trainer's {key!r} is {short_repr(trainer.get(key), 40)}"
    if not all(isinstance(record, dict) for record in trainer["history"]):
        return "the trainer's 'history' is not a list of dicts"
    wrong = [key for key in ("optimizer", "scheduler", "rng") if not isinstance(checkpoint.get(key, {}), dict)]
    return f"{wrong} are not dicts" if wrong else None


class Trainer:
    r"""Trains and evaluates a model on samples that a :class:`~graphfuse.GraphBuilder` turns into
    graph batches, for a :class:`~graphfuse.train.Task` (loss, outputs, metrics) the Trainer owns.

    Args:
        model (torch.nn.Module): ``model(batch)`` gives what the task scores.
        builder (GraphBuilder): turns the samples into graphs. (For one release, a model from
            :func:`graphfuse.models.create_model` that remembers its builder may leave it out, with
            a ``DeprecationWarning``.)
        task (str or Task, optional): what the model is trained for: a registered name
            (``"classification"``, ``"multilabel"``, ``"regression"``, ``"retrieval"``; see
            :func:`~graphfuse.train.create_task`) or a :class:`~graphfuse.train.Task`. ``None``
            takes the name the model declares as ``model.task_name`` (models from
            :func:`~graphfuse.models.create_model` do). (default: :obj:`None`)
        epochs (int, optional): passes over the training data. (default: :obj:`10`)
        batch_size (int, optional): samples per step *per process*. (default: :obj:`32`)
        eval_batch_size (int, optional): samples per batch *per process* in :meth:`evaluate` and
            :meth:`predict` (and validation); larger batches there cost no accuracy and less time.
            ``None`` takes ``batch_size``. (default: :obj:`None`)
        lr (float, optional): peak learning rate (of the parameters no ``param_groups`` entry
            selects). (default: :obj:`1e-3`)
        weight_decay (float, optional): decoupled weight decay, on weight matrices only (not on
            biases, norms, embeddings of absent node types or the temperature). (default: :obj:`0.01`)
        optimizer (str or torch.optim.Optimizer or Callable, optional): ``"adamw"``, ``"adam"`` or
            ``"sgd"``; an optimiser already built over the model's parameters (its own groups and
            settings; ``lr``, ``weight_decay`` and ``param_groups`` do not apply); or a factory
            called with the parameter groups, each carrying its ``lr`` and ``weight_decay``
            (``torch.optim.RMSprop``, ``functools.partial(torch.optim.SGD, momentum=0.9)``).
            See :func:`~graphfuse.train.build_optimizer`. (default: :obj:`"adamw"`)
        param_groups (list[dict] or Callable, optional): parameters with settings of their own,
            e.g. ``[{"params": "encoders.text.backbone", "lr": 1e-5}]`` for a fine-tuned
            backbone: ``"params"`` is a module-name prefix (or a list of prefixes or parameters),
            the other keys the group's settings; or ``param_groups(model)`` giving such a list.
            The rest train at ``lr``; every group keeps the decay split of ``weight_decay``.
            A prefix that matches nothing, or a parameter in two groups, is an error.
            See :func:`~graphfuse.train.parameter_groups`. (default: :obj:`None`)
        schedule (str, optional): ``"cosine"``, ``"linear"`` (decay to 0) or ``"constant"``,
            after a linear warm-up, stepped per optimiser step; it scales every group's learning
            rate relative to its own. (default: :obj:`"cosine"`)
        warmup (float, optional): fraction of all steps spent warming up. (default: :obj:`0.05`)
        clip_grad_norm (float, optional): clip the gradient norm to this; ``None`` for no
            clipping. (default: :obj:`1.0`)
        precision (str, optional): ``"fp32"`` or ``"bf16"`` (autocast). (default: :obj:`"fp32"`)
        compile (bool, optional): run the model through :func:`torch.compile`. The convs then
            take their reference path (no graph break) unless created with
            ``conv_kwargs={"path": "fused"}``; on a CPU the fused kernels are the faster choice (see
            the README's throughput benchmark). (default: :obj:`False`)
        seed (int, optional): :meth:`fit` seeds every generator with it when it starts (so two
            fits from the same initial weights train the same), and the data order.
            :meth:`evaluate` and :meth:`predict` draw nothing and leave every generator as they
            found it. (default: :obj:`0`)
        deterministic (bool, optional): deterministic kernels (see :func:`set_deterministic`).
            (default: :obj:`False`)
        patience (int, optional): stop after this many epochs without improvement of
            ``monitor``; ``None`` never stops early. (default: :obj:`None`)
        monitor (str, optional): the validation metric to follow (default: the task's, e.g.
            ``"accuracy"``; the training loss when there is no validation data).
        checkpoint_dir (str or Path, optional): where ``last.pt`` (every epoch) and ``best.pt``
            go; a folder holding them already is refused unless ``resume`` or ``overwrite``.
            :meth:`fit` checks it before any training: created where missing; a file, or a
            folder this process cannot write in, is refused.
        overwrite (bool, optional): allow replacing checkpoints of an earlier run.
            (default: :obj:`False`)
        restore_best (bool, optional): at the end of :meth:`fit`, put back the weights of the
            epoch with the best ``monitor`` value (kept in memory, or read from ``best.pt`` of a
            resumed run), as Keras' ``restore_best_weights`` does; ``False`` keeps the last
            epoch's. (default: :obj:`False`)
        distributed (bool, optional): DDP over the processes ``torchrun`` started; ``None`` joins
            when launched by torchrun. (default: :obj:`None`)
        device (str or torch.device, optional): ``"cpu"``, ``"cuda"``, ``"cuda:0"`` or a
            :class:`torch.device`; a CUDA device this machine lacks is refused here. Default: the
            (local) CUDA device when there is one, else the CPU.
        num_workers (int, optional): ``DataLoader`` worker processes (they featurise and batch).
            (default: :obj:`0`)
        progress (bool, optional): progress bars and a one-line summary per epoch, on rank 0 only:
            a bar over the epochs that stays when fit ends, a bar over each epoch's batches that
            gives way to the epoch's summary line (which also goes to the
            ``graphfuse.train.engine`` logger). (default: :obj:`True`)
        callbacks (list[Callback], optional): hooks run during :meth:`fit`, among them loggers
            (:class:`~graphfuse.train.CSVLogger`, :class:`~graphfuse.train.TensorBoardLogger`);
            see :class:`~graphfuse.train.Callback`. (default: :obj:`None`)
        find_unused_parameters (bool, optional): DDP's flag for parameters a step may leave
            without a gradient (a modality absent from a process's batch, in a model that skips
            it). graphfuse's models run absent node types through their layers as empty tensors,
            so they rarely need it; ``False`` saves a graph traversal per step. (default: :obj:`True`)
        modality_dropout (float, optional): probability that a training sample loses each of its
            modalities (never all, nor every modality the task names informative, e.g. those whose
            gated unimodal heads vote; see :class:`~graphfuse.train.ModalityDropout`), so the
            model learns to predict from any subset. ``None`` takes the model's own
            ``model.modality_dropout`` (set by :func:`~graphfuse.models.create_model`), or ``0``.
            (default: :obj:`None`)
        gradient_modulation (str or GradientModulation, optional): balance the modalities'
            gradients (:class:`~graphfuse.train.GradientModulation`: ``"ogm-ge"``, ``"ogm"`` or
            ``"none"``) for models with unimodal heads. ``None`` takes the model's own
            ``model.gradient_modulation``, or ``"none"``. (default: :obj:`None`)

    Example:
        >>> model = create_model("graph-gat", builder=builder, num_classes=10)
        >>> trainer = Trainer(model, builder, epochs=5, checkpoint_dir="runs/gat")
        >>> history = trainer.fit(train, val)      # items: (sample, label)
        >>> trainer.evaluate(test)                  # {"loss": ..., "accuracy": ..., "macro_f1": ...}
        >>> # A fine-tuned backbone at a lower rate, SGD with momentum, a CSV and a TensorBoard log:
        >>> trainer = Trainer(model, builder, lr=1e-3, param_groups=[{"params": "backbone", "lr": 1e-5}],
        ...                   optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
        ...                   callbacks=[CSVLogger("runs/gat/log.csv"), TensorBoardLogger("runs/gat/tb")])
    """

    def __init__(self, model: torch.nn.Module, builder: GraphBuilder | None = None, *,
                 task: str | Task | None = None, epochs: int = 10, batch_size: int = 32,
                 eval_batch_size: int | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.01, optimizer: OptimizerSpec = "adamw", param_groups: GroupsSpec | None = None,
                 schedule: str = "cosine", warmup: float = 0.05,
                 clip_grad_norm: float | None = 1.0, precision: str = "fp32", compile: bool = False, seed: int = 0,
                 deterministic: bool = False, patience: int | None = None, monitor: str | None = None,
                 checkpoint_dir: str | os.PathLike | None = None, overwrite: bool = False, restore_best: bool = False,
                 distributed: bool | None = None, device: str | torch.device | None = None, num_workers: int = 0,
                 progress: bool = True, callbacks: Sequence[Callback] | None = None,
                 find_unused_parameters: bool = True,
                 modality_dropout: float | None = None,
                 gradient_modulation: str | GradientModulation | None = None) -> None:
        check_int(epochs, "Trainer 'epochs'")
        check_int(batch_size, "Trainer 'batch_size'")
        if eval_batch_size is not None:
            check_int(eval_batch_size, "Trainer 'eval_batch_size' (or None for batch_size)")
        check_int(num_workers, "Trainer 'num_workers'", minimum=0)
        check_optimizer(optimizer, param_groups)
        check_choice(schedule, SCHEDULES, "Trainer 'schedule'")
        check_choice(precision, PRECISIONS, "Trainer 'precision'")
        if patience is not None:
            check_int(patience, "Trainer 'patience'")
        check_number(lr, "Trainer 'lr'")  # 0 freezes the weights, as torch's optimisers allow
        check_number(weight_decay, "Trainer 'weight_decay'")
        check_int(seed, "Trainer 'seed'", minimum=0)
        device = ddp.check_device(device, "Trainer 'device'")
        if not check_number(warmup, "Trainer 'warmup' (a fraction of all steps)") < 1:
            raise ValueError(f"Trainer 'warmup' is a fraction of all steps in [0, 1), got {warmup!r}")
        if clip_grad_norm is not None and check_number(clip_grad_norm, "Trainer 'clip_grad_norm' (or None)") == 0:
            raise ValueError(f"Trainer 'clip_grad_norm' must be positive or None, got {clip_grad_norm!r}")
        task = _resolve_task(model, task)
        builder = _resolve_builder(model, builder)
        self.model, self.task, self.builder = model, task, builder
        if modality_dropout is None:
            modality_dropout = getattr(_unwrap(model), "modality_dropout", 0.0)
        self.modality_dropout = check_probability(modality_dropout, "Trainer 'modality_dropout'")
        if gradient_modulation is None:
            gradient_modulation = getattr(_unwrap(model), "gradient_modulation", "none")
        if not isinstance(gradient_modulation, GradientModulation):
            gradient_modulation = GradientModulation(gradient_modulation)
        if gradient_modulation.mode != "none" and not (
                hasattr(_unwrap(model), "modality_parameters") and isinstance(task, ClassificationTask)
                and getattr(task, "unimodal", None) is not None and not task.head.multilabel):
            raise ValueError(f"Trainer gradient_modulation={gradient_modulation.mode!r} scores each modality by its "
                             f"unimodal head on class labels: it needs a multi-class model with unimodal heads and "
                             f"modality_parameters() (graph models from create_model with unimodal_weight > 0); "
                             f"{type(_unwrap(model)).__name__} with {type(task).__name__} has none")
        self.gradient_modulation = gradient_modulation
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        self.optimizer, self.param_groups, self.schedule, self.warmup = optimizer, param_groups, schedule, warmup
        self.clip_grad_norm = clip_grad_norm
        self.precision, self.compile, self.seed, self.deterministic = precision, compile, seed, deterministic
        self.patience, self.monitor = patience, monitor
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.overwrite, self.num_workers, self.progress = overwrite, num_workers, progress
        self.callbacks = check_callbacks(callbacks)
        self.should_stop = False
        self.restore_best = bool(restore_best)
        self.find_unused_parameters = find_unused_parameters
        self.info: ddp.ProcessInfo | None = None  # resolved in _setup
        self._distributed, self._device = distributed, device
        self.history: list[dict[str, Any]] = []

    # Set-up ---------------------------------------------------------------------------------------
    def _setup(self) -> None:
        if isinstance(self.info, ddp.ProcessInfo):
            return
        self.info = ddp.setup(self._distributed, self._device)
        if self.deterministic:
            set_deterministic(True)
        self.model.to(self.info.device)

    @property
    def device(self) -> torch.device:
        self._setup()
        return self.info.device

    def _loader(self, data: Sequence[Any], train: bool) -> DataLoader:
        dataset = IndexedDataset(data, "training" if train else "evaluation")
        drop_last = False
        if train or self.task.global_batch:
            sampler = DistributedSampler(dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                         shuffle=train, seed=self.seed, drop_last=False)
            # A loss over the global batch may need more samples than a short last batch holds.
            drop_last = train and 0 < len(sampler) % self.batch_size * self.info.world_size < self.task.min_batch_size
        else:
            # Evaluation: unequal shares rather than the padding DistributedSampler adds (repeated
            # samples would count twice in the mean loss). Only a loss that gathers needs equal shares.
            sampler = range(self.info.rank, len(dataset), self.info.world_size)
        collate = GraphCollate(self.builder, keep_samples=getattr(_unwrap(self.model), "needs_node_sets", False),
                               check_target=self.task.check_target if self.task.needs_target else None,
                               modality_dropout=self.modality_dropout if train else 0.0, seed=self.seed)
        if train:
            sampler = EpochSampler(sampler)
        # The loader's own generator: every iterator draws its workers' base seed from it, and only
        # non-persistent ones draw per epoch, so torch's global generator (the model's dropout) must
        # not be it, or runs with and without workers would train apart.
        return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size, sampler=sampler,
                          collate_fn=collate, drop_last=drop_last, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, generator=torch.Generator().manual_seed(self.seed))

    def _on_device(self, batch):
        """``batch`` on the device; a batch that carries its featurised samples (for a re-ranker)
        also gets their :class:`~graphfuse.data.PairGraphs`, built here rather than in the model."""
        batch = batch.to(self.info.device)
        node_sets = getattr(batch, "node_sets", None)
        if node_sets is not None:
            batch.pair_graphs = PairGraphs(self.builder, node_sets)
        return batch

    def _autocast(self):
        return torch.autocast(self.info.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _materialize(self, loader: DataLoader) -> None:
        """Runs one batch through a model with lazy input sizes, so that every parameter exists
        before the optimiser, the checkpoint or DDP sees them."""
        if not any(isinstance(p, UninitializedParameter) for p in self.model.parameters()):
            return
        batch = next(iter(loader), None)
        if batch is None:  # an empty evaluation share: the check below names what stays unset
            return self._check_materialized()
        batch = self._on_device(batch)
        training = self.model.training
        self.model.eval()
        with torch.no_grad(), self._autocast():
            self.model(batch)
        self.model.train(training)
        self._check_materialized()

    def _check_materialized(self) -> None:
        lazy = [name for name, p in self.model.named_parameters() if isinstance(p, UninitializedParameter)]
        if lazy:
            raise ValueError(f"Parameters {lazy[:4]}{' ...' if len(lazy) > 4 else ''} have lazy input sizes that the "
                             f"first batch did not set (an evaluation-mode forward never reached them, or their node "
                             f"type had no nodes in it); give them explicit input sizes or run the model once on a "
                             f"batch that reaches them before training")

    def _optimizer(self) -> torch.optim.Optimizer:
        return build_optimizer(_unwrap(self.model), self.optimizer, self.param_groups, self.lr, self.weight_decay)

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _wrap(self) -> torch.nn.Module:
        model = self.model
        if self.info.distributed:
            device_ids = [self.info.device.index] if self.info.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters)
        return torch.compile(model) if self.compile else model

    def _check_checkpoint_dir(self, resume) -> None:
        if self.checkpoint_dir is None:
            return
        if self.info.is_main:  # the folder the saves write in, checked before any training
            ensure_writable_dir(self.checkpoint_dir, "Trainer 'checkpoint_dir'")
        if resume is not None or self.overwrite:
            return
        existing = [name for name in CHECKPOINT_NAMES if (self.checkpoint_dir / name).exists()]
        if existing:
            raise FileExistsError(f"checkpoint_dir '{self.checkpoint_dir}' already holds {existing} from an earlier "
                                  f"run; pass resume='last' to continue it, overwrite=True to replace them, or choose "
                                  f"another folder")

    # Checkpoints ----------------------------------------------------------------------------------
    def _save(self, name: str, optimizer, scheduler, state: dict[str, Any]) -> None:
        if self.checkpoint_dir is not None and self.info.is_main:
            save_checkpoint(self.checkpoint_dir / name, self.model.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), trainer=state, rng=_rng_state())
        ddp.barrier()

    def _resume(self, resume, optimizer, scheduler) -> dict[str, Any]:
        path = Path(resume)
        if str(resume) in ("last", "best"):
            if self.checkpoint_dir is None:
                raise ValueError(f"resume={resume!r} needs checkpoint_dir; or pass the checkpoint's path")
            path = self.checkpoint_dir / f"{resume}.pt"
        checkpoint = load_checkpoint(path, map_location=self.info.device)
        missing = [key for key in ("optimizer", "scheduler", "trainer") if key not in checkpoint]
        if missing:
            raise ValueError(f"'{path}' holds model weights but no training state ({missing}), so training cannot "
                             f"resume from it; load the weights with graphfuse.train.load_weights and start a new fit")
        problem = _training_state_problem(checkpoint)
        if problem:
            raise CheckpointError(f"{path} holds damaged training state ({problem}), so training cannot resume from "
                                  f"it; resume from another checkpoint or start a new fit")
        try:
            self.model.load_state_dict(checkpoint["model"])
        except RuntimeError as error:
            raise CheckpointError(f"{path} does not fit the model being trained; resume with the model that wrote "
                                  f"it: {error}") from None
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            _set_rng_state(checkpoint.get("rng", {}))
        except (ValueError, TypeError, LookupError, RuntimeError) as error:
            raise CheckpointError(f"{path}: its optimiser, schedule or random state cannot be restored "
                                  f"({type(error).__name__}: {error}); the file is damaged or comes from another "
                                  f"setup (optimizer, param_groups), resume with the setup that wrote it") from None
        log.info("resumed from %s after epoch %d", path, checkpoint["trainer"]["epoch"])
        return checkpoint["trainer"]

    # Training -------------------------------------------------------------------------------------
    def fit(self, train_data: Sequence[Any], val_data: Sequence[Any] | None = None,
            resume: str | os.PathLike | None = None) -> list[dict[str, Any]]:
        """Trains for ``epochs`` (or until early stopping); returns the history, one dict per
        epoch (``train_loss``, ``lr``, ``seconds``, ``val_loss`` and ``val_<metric>``).

        Args:
            train_data (Sequence): samples or ``(sample, target)`` pairs.
            val_data (Sequence, optional): evaluated after every epoch; a model with gated
                unimodal heads also decides there which of them vote (see
                :meth:`~graphfuse.nn.UnimodalHeads.gate_votes`).
            resume (str or Path, optional): a checkpoint to continue from, or ``"last"`` /
                ``"best"`` in ``checkpoint_dir``: weights, optimiser, schedule, random state,
                epoch and early-stopping state all resume.
        """
        if val_data is not None:  # here, rather than after the first epoch's training
            check_dataset(val_data, "validation")
        self._setup()
        seed_everything(self.seed)
        self._check_checkpoint_dir(resume)
        if self.restore_best and resume is not None and self.checkpoint_dir is None:
            raise ValueError("Trainer(restore_best=True) resuming from a checkpoint path needs checkpoint_dir, whose "
                             "best.pt holds the best weights of the epochs before the resume; pass checkpoint_dir")
        loader = self._loader(train_data, train=True)
        self._materialize(loader)
        optimizer = self._optimizer()
        total_steps = self.epochs * len(loader)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _schedule(self.schedule, int(self.warmup * total_steps), total_steps))
        monitor = self.monitor or (self.task.monitor if val_data is not None else "loss")
        mode = self.task.mode if (val_data is not None and monitor == self.task.monitor) else (
            "min" if monitor.endswith(SMALLER_IS_BETTER) else "max")
        state = {"epoch": -1, "step": 0, "best": None, "bad_epochs": 0, "history": []}
        if resume is not None:
            state = self._resume(resume, optimizer, scheduler)
        self.history = state["history"]
        self.should_stop = False
        self._call("on_fit_start")
        try:
            if resume is not None and self.patience is not None and state["bad_epochs"] >= self.patience:
                log.info("the resumed run had stopped early after epoch %d; nothing left to train", state["epoch"])
            else:
                self._epochs(loader, val_data, optimizer, scheduler, state, monitor, mode)
        finally:
            self._call("on_fit_end", self.history)
        return self.history

    def _epochs(self, loader, val_data, optimizer, scheduler, state: dict, monitor: str, mode: str) -> None:
        """The epochs of :meth:`fit` from the one after ``state['epoch']``, under a bar over them
        that stays when they end."""
        wrapped = self._wrap()
        best_weights = None
        bar = tqdm(total=self.epochs, initial=state["epoch"] + 1, desc="fit", unit="epoch", leave=True,
                   disable=not (self.progress and self.info.is_main))
        try:
            for epoch in range(state["epoch"] + 1, self.epochs):
                started = time.perf_counter()
                loader.sampler.set_epoch(epoch)
                loader.sampler.keep_one_of = self.task.informative_modalities()
                train_loss = self._train_epoch(wrapped, loader, optimizer, scheduler, epoch, state)
                record = {"epoch": epoch, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0]}
                if val_data is not None:
                    record.update({f"val_{k}": v for k, v in self._validate(val_data).items()})
                record["seconds"] = time.perf_counter() - started
                self.history.append(record)
                value = record.get(f"val_{monitor}", record.get(monitor))
                if value is None and monitor == "loss":
                    value = record["train_loss"]
                if value is None:
                    raise ValueError(f"Trainer 'monitor' {monitor!r} is not among this run's values "
                                     f"{[k for k in record if k not in ('epoch', 'seconds')]}"
                                     f"{'' if val_data is not None else ' (validation metrics need val_data)'}")
                improved = state["best"] is None or (value > state["best"] if mode == "max" else value < state["best"])
                state.update(epoch=epoch, history=self.history, best=value if improved else state["best"],
                             bad_epochs=0 if improved else state["bad_epochs"] + 1)
                self._save("last.pt", optimizer, scheduler, state)
                if improved:
                    self._save("best.pt", optimizer, scheduler, state)
                    if self.restore_best:
                        best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                if self.info.is_main:
                    summary = epoch_summary(record, self.epochs, improved)
                    log.info("%s", summary)
                    if self.progress:  # above the bars, which give way to it
                        tqdm.write(summary)
                bar.set_postfix({monitor: f"{value:.4g}", "best": f"{state['best']:.4g}"}, refresh=False)
                bar.update(1)
                self._call("on_epoch_end", record)
                if self.patience is not None and state["bad_epochs"] >= self.patience:
                    log.info("early stop after epoch %d: %s has not improved for %d epochs", epoch, monitor,
                             self.patience)
                    break
                if self.should_stop:
                    log.info("a callback stopped training after epoch %d", epoch)
                    break
        finally:
            bar.close()
        if self.restore_best:
            self._restore(best_weights, state)

    def _restore(self, weights: dict[str, torch.Tensor] | None, state: dict) -> None:
        """Loads the best epoch's ``weights``; after a resume that never improved on the resumed
        best, they are in ``best.pt``."""
        if weights is None and state["best"] is not None:
            best = self.checkpoint_dir / "best.pt"  # a resumed run: fit checked that there is a folder
            if not best.is_file():
                log.warning("restore_best: %s is gone, so the last epoch's weights are kept", best)
                return
            weights = load_checkpoint(best, map_location="cpu")["model"]
        if weights is None:
            return
        self.model.load_state_dict(weights)
        log.info("restored the weights of the best epoch (%s)", state["best"])

    def _train_epoch(self, wrapped, loader, optimizer, scheduler, epoch: int, state: dict) -> float:
        self.model.train()
        total, steps = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=not (self.progress and self.info.is_main), leave=False)
        for batch in bar:
            batch = self._on_device(batch)
            with self._autocast():
                output = wrapped(batch)
                loss = self.task.loss(output, batch)
            value = float(ddp.all_reduce_mean(loss.detach().float()))
            if not math.isfinite(value):
                self._stop(f"the loss became {value}", epoch, state)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if isinstance(output, MultimodalOutput) and self.gradient_modulation.active(epoch):
                self.gradient_modulation(output, batch.y, _unwrap(self.model).modality_parameters())
            if self.clip_grad_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
                if not math.isfinite(float(norm)):
                    self._stop(f"the gradient norm became {float(norm)}", epoch, state)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            total, steps = total + value, steps + 1
            bar.set_postfix(loss=f"{value:.4f}")
            self._call("on_batch_end", state["step"], value)
        return total / max(steps, 1)

    def _stop(self, what: str, epoch: int, state: dict) -> None:
        last = None if self.checkpoint_dir is None else self.checkpoint_dir / "last.pt"
        kept = (f"the last good checkpoint, '{last}' (after epoch {state['epoch']}), is untouched"
                if last is not None and last.exists() else
                "no checkpoint was written yet (set checkpoint_dir to keep one every epoch)")
        raise NonFiniteLossError(
            f"Training stopped at epoch {epoch}, step {state['step']}: {what}. This step did not update the weights; "
            f"{kept}. Lower the learning rate, keep clip_grad_norm on, or look for NaN/inf in the inputs")

    # Evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, data: Sequence[Any]) -> dict[str, torch.Tensor]:
        """The task's per-sample outputs (e.g. ``logits`` and ``target``) over ``data``, in its
        order, gathered from every process, plus the mean ``loss`` over batches."""
        self._setup()
        # The loader draws from a generator of its own, but a model may draw in evaluation mode
        # too (a custom one): fork, so that evaluating leaves the caller's random state as it was.
        devices = [self.info.device] if self.info.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return self._predict(data)

    @torch.no_grad()  # also for validation, which calls it directly
    def _predict(self, data: Sequence[Any]) -> dict[str, torch.Tensor]:
        loader = self._loader(data, train=False)
        self._materialize(loader)
        model = _unwrap(self.model)
        training = model.training
        model.eval()
        parts, indices, loss_sum, loss_count = [], [], 0.0, 0
        for batch in tqdm(loader, desc="evaluate", disable=not (self.progress and self.info.is_main), leave=False):
            batch = self._on_device(batch)
            with self._autocast():
                output = model(batch)
                scored = (not self.task.needs_target or getattr(batch, "y", None) is not None) and (
                    batch.num_graphs * (self.info.world_size if self.task.global_batch else 1)
                    >= self.task.min_batch_size)
                loss = self.task.loss(output, batch) if scored else None
            if loss is not None:
                loss_sum, loss_count = loss_sum + float(loss) * batch.num_graphs, loss_count + batch.num_graphs
            parts.append({k: v.cpu() for k, v in self.task.outputs(output, batch).items()})
            indices.append(batch.sample_index.cpu())
        model.train(training)
        gathered = ddp.all_gather_objects((parts, indices, loss_sum, loss_count))
        if len({frozenset(part) for rank_parts, _, _, _ in gathered for part in rank_parts}) > 1:
            raise ValueError("Some batches have targets and some do not; give every sample a target (a (sample, "
                             "target) pair) or none")
        index = torch.cat([i for _, rank_indices, _, _ in gathered for i in rank_indices])
        # For a loss that gathers, the sampler pads every process's share to equal length with repeated
        # samples: keep one of each.
        first = torch.full((len(data),), -1, dtype=torch.long)
        first.scatter_reduce_(0, index, torch.arange(index.numel()), reduce="amin", include_self=False)
        outputs = {key: torch.cat([part[key] for rank_parts, _, _, _ in gathered for part in rank_parts])[first]
                   for key in gathered[0][0][0]}
        count = sum(c for _, _, _, c in gathered)
        if count:
            outputs["loss"] = torch.tensor(sum(s for _, _, s, _ in gathered) / count)
        return outputs

    def evaluate(self, data: Sequence[Any]) -> dict[str, float]:
        """The task's metrics over ``data`` (all processes' shares together) and the mean loss."""
        return self._score(self.predict(data))

    def _validate(self, data: Sequence[Any]) -> dict[str, float]:
        """:meth:`evaluate` during :meth:`fit`, where the task may adjust the model to the held-out
        data (:meth:`Task.after_validation`; e.g. which unimodal heads vote) before it is scored."""
        with self.task.validation():
            outputs = self._predict(data)  # within fit's random stream
        return self._score(self.task.after_validation(outputs))

    def _score(self, outputs: dict[str, torch.Tensor]) -> dict[str, float]:
        loss = outputs.pop("loss", None)
        metrics = self.task.metrics(outputs)
        return metrics if loss is None else {"loss": float(loss), **metrics}
