"""What a model is trained for: its loss, what evaluation keeps of each batch, and its metrics.

The task belongs to the Trainer, which takes it by name or object (``Trainer(model,
task="classification")``; by default the name the model declares as ``model.task_name``) and makes
a named one for the model with :func:`create_task`. The engine calls ``task.loss(output, batch)``
while training, and ``task.outputs`` / ``task.metrics`` while evaluating (outputs of all batches,
of all processes under DDP, are concatenated before ``metrics`` sees them).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from graphfuse.nn.contrastive import info_nce
from graphfuse.nn.heads import ClassificationHead, RegressionHead
from graphfuse.nn.unimodal import MultimodalOutput, UnimodalHeads
from graphfuse.registry import Registry
from graphfuse.train.distributed import all_gather_with_grad
from graphfuse.train.metrics import classification_metrics, multilabel_metrics, regression_metrics, retrieval_metrics

log = logging.getLogger(__name__)


class Task:
    """Base class. ``monitor`` names the validation metric early stopping and the best checkpoint
    follow, ``mode`` whether larger (``"max"``) or smaller (``"min"``) is better. ``global_batch``
    marks a loss over all processes' batches together, ``min_batch_size`` the fewest samples (over
    all processes) its loss is defined for: a shorter last training batch is dropped, and
    evaluation leaves such a batch out of the mean loss."""

    name = "task"
    monitor = "loss"
    mode = "min"
    needs_target = True
    #: ``loss`` gathers the batches of all processes (a collective call, so under DDP every process
    #: must score as many batches of one size, also while evaluating).
    global_batch = False
    min_batch_size = 1

    def check_target(self, target: Tensor) -> None:
        """Rejects bad targets of a CPU batch before it moves to a device."""

    def loss(self, output: Any, batch) -> Tensor:
        raise NotImplementedError

    def outputs(self, output: Any, batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def metrics(self, outputs: dict[str, Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def validation(self) -> contextlib.AbstractContextManager:
        """The context of a validation pass during training; ``outputs`` may keep more in it."""
        return contextlib.nullcontext()

    def after_validation(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """What the Trainer scores of a validation pass's outputs (``loss`` included); a task may
        adjust the model to the held-out data here and rescore them. The default keeps them."""
        return outputs

    def informative_modalities(self) -> tuple[str, ...] | None:
        """The modalities known to predict the target alone, of which modality drop-out leaves
        every training sample one (see :class:`~graphfuse.train.ModalityDropout`); :obj:`None`
        when unknown (any modality)."""
        return None

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(monitor={self.monitor!r})"


def _target(batch, task: Task) -> Tensor:
    target = getattr(batch, "y", None)
    if target is None:
        raise ValueError(f"{task.__class__.__name__} needs targets: give the dataset (sample, target) pairs")
    return target


def _with_target(outputs: dict[str, Tensor], batch) -> dict[str, Tensor]:
    """``outputs`` plus the batch's targets when it has some (prediction on unlabelled samples has none)."""
    target = getattr(batch, "y", None)
    return outputs if target is None else {**outputs, "target": target}


def _outputs_target(outputs: dict[str, Tensor], task: Task) -> Tensor:
    if "target" not in outputs:
        raise ValueError(f"{task.__class__.__name__} metrics need targets: give the dataset (sample, target) pairs")
    return outputs["target"]


class _HeadTask(Task):
    """A task scored by a head's own loss; its per-sample output is kept under ``output_key``.

    With ``unimodal`` heads (:class:`~graphfuse.nn.UnimodalHeads`), a training output that is a
    :class:`~graphfuse.nn.MultimodalOutput` is scored as the fused head's loss plus
    ``unimodal_weight`` times the unimodal heads' loss (:meth:`~graphfuse.nn.UnimodalHeads.loss`).
    """

    output_key = "output"

    def __init__(self, head: ClassificationHead | RegressionHead, unimodal: UnimodalHeads | None = None,
                 unimodal_weight: float = 0.0) -> None:
        self.head, self.unimodal, self.unimodal_weight = head, unimodal, unimodal_weight
        self._recorded: dict[str, Tensor] | None = None

    def loss(self, output: Tensor | MultimodalOutput, batch) -> Tensor:
        target = _target(batch, self)
        if not isinstance(output, MultimodalOutput):
            return self.head.loss(output, target)
        loss = self.head.loss(output.output, target)
        if self.unimodal is not None and self.unimodal_weight:
            loss = loss + self.unimodal_weight * self.unimodal.loss(output.unimodal, output.present, target)
        return loss

    def outputs(self, output: Tensor | MultimodalOutput, batch) -> dict[str, Tensor]:
        if isinstance(output, MultimodalOutput):
            output = output.output
        outputs = _with_target({self.output_key: output.detach().float()}, batch)
        if self._recorded is not None and self._recorded.keys() >= {"fused", "unimodal", "present"}:
            outputs.update(self._recorded)
        return outputs

    @contextlib.contextmanager
    def validation(self) -> Iterator[None]:
        """With gated unimodal heads (``UnimodalHeads(gated=True)``), ``outputs`` also keeps the
        fused head's own output (``"fused"``, before the ensemble) and the heads' predictions
        (``"unimodal"``, ``"present"``), which :meth:`after_validation` gates the votes on."""
        if self.unimodal is None or not self.unimodal.gated:
            yield
            return

        def keep_fused(module, args, output):
            self._recorded["fused"] = output.detach().float()

        def keep_unimodal(module, args, output):
            self._recorded.update(unimodal=output[0].detach().float(), present=output[1])

        self._recorded = {}
        hooks = [self.head.register_forward_hook(keep_fused), self.unimodal.register_forward_hook(keep_unimodal)]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
            self._recorded = None

    def informative_modalities(self) -> tuple[str, ...] | None:
        """With gated unimodal heads, the modalities whose heads vote (see
        :meth:`~graphfuse.nn.UnimodalHeads.gate_votes`)."""
        if self.unimodal is None or not self.unimodal.gated:
            return None
        voting = zip(self.unimodal.node_types, self.unimodal.votes.tolist(), strict=True)
        return tuple(node_type for node_type, vote in voting if vote)

    def after_validation(self, outputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Gates the unimodal heads' votes on the validation outputs
        (:meth:`~graphfuse.nn.UnimodalHeads.gate_votes`) and rescores them with the new votes, so
        the validation score (and the best epoch it picks) is that of the model as it now is."""
        fused, unimodal, present = (outputs.pop(key, None) for key in ("fused", "unimodal", "present"))
        if fused is None or unimodal is None or "target" not in outputs:
            return outputs
        before = self.informative_modalities()
        self.unimodal.gate_votes(unimodal, present, outputs["target"])
        if self.informative_modalities() != before:
            log.info("unimodal heads voting after validation: %s", ", ".join(self.informative_modalities()) or "none")
        output = self.unimodal.ensemble(fused, unimodal, present)
        return {**outputs, self.output_key: output, "loss": self.head.loss(output, outputs["target"]).detach()}


class ClassificationTask(_HeadTask):
    """Multi-class (cross-entropy; accuracy and macro-F1) or multi-label (binary cross-entropy;
    subset accuracy, micro/macro-F1 and mAP) classification by a :class:`ClassificationHead`."""

    name = "classification"
    mode = "max"
    output_key = "logits"

    def __init__(self, head: ClassificationHead, unimodal: UnimodalHeads | None = None,
                 unimodal_weight: float = 0.0) -> None:
        super().__init__(head, unimodal, unimodal_weight)
        self.monitor = "mAP" if head.multilabel else "accuracy"

    def check_target(self, target: Tensor) -> None:
        classes = self.head.out_channels
        if self.head.multilabel:
            if target.dim() != 2 or target.size(1) != classes:
                raise ValueError(f"multi-label targets must be {classes} zeros/ones per sample, got a batch of shape "
                                 f"{tuple(target.shape)}")
            if not bool(((target == 0) | (target == 1)).all()):
                raise ValueError("multi-label targets must be 0 or 1")
            return
        if target.dim() != 1 or target.is_floating_point():
            raise ValueError(f"multi-class targets must be one integer class per sample, got {target.dtype} of "
                             f"shape {tuple(target.shape)}")
        if int(target.min()) < 0 or int(target.max()) >= classes:
            raise ValueError(f"class indices must lie in [0, {classes}), got {int(target.min())}..{int(target.max())}; "
                             "raise num_classes or remap the labels")

    def metrics(self, outputs: dict[str, Tensor]) -> dict[str, float]:
        compute = multilabel_metrics if self.head.multilabel else classification_metrics
        return compute(outputs["logits"], _outputs_target(outputs, self))


class RegressionTask(_HeadTask):
    """Regression by a :class:`RegressionHead`: mean squared error; MSE, MAE and R²."""

    name = "regression"
    monitor = "mse"
    mode = "min"
    output_key = "prediction"

    def check_target(self, target: Tensor) -> None:
        if not target.is_floating_point():
            raise ValueError(f"regression targets must be floats, got {target.dtype}; e.g. give 3.0 rather than 3")
        if not bool(torch.isfinite(target).all()):
            raise ValueError("regression targets hold NaN or infinite values")

    def outputs(self, output: Tensor, batch) -> dict[str, Tensor]:
        outputs = super().outputs(output, batch)
        if "target" in outputs:
            outputs["target"] = outputs["target"].float()
        return outputs

    def metrics(self, outputs: dict[str, Tensor]) -> dict[str, float]:
        return regression_metrics(outputs["prediction"], _outputs_target(outputs, self))


class RetrievalTask(Task):
    r"""Cross-modal retrieval by a dual encoder: symmetric InfoNCE over the batch (over the global
    batch under DDP: embeddings are gathered with their gradients), plus the re-ranker's
    cross-entropy when the model has one.

    The model's output is a dict with ``"query"`` and ``"gallery"`` (unit rows, sample :math:`i`'s
    two sides are a positive pair), ``"logit_scale"``, and optionally ``"rerank_loss"``. Metrics
    are Recall@1/5/10 and MRR in both directions (``q2g/...``, ``g2q/...``) and ``rsum``, over the
    whole evaluated set as the gallery.
    """

    name = "retrieval"
    monitor = "rsum"
    mode = "max"
    needs_target = False
    global_batch = True
    min_batch_size = 2  # InfoNCE needs a negative

    def loss(self, output: dict[str, Tensor], batch) -> Tensor:
        query, gallery = all_gather_with_grad(output["query"]), all_gather_with_grad(output["gallery"])
        loss = info_nce(query, gallery, output["logit_scale"])
        if output.get("rerank_loss") is not None:
            loss = loss + output["rerank_loss"]
        return loss

    def outputs(self, output: dict[str, Tensor], batch) -> dict[str, Tensor]:
        return {"query": output["query"].detach().float(), "gallery": output["gallery"].detach().float()}

    def metrics(self, outputs: dict[str, Tensor]) -> dict[str, float]:
        return retrieval_metrics(outputs["query"] @ outputs["gallery"].T)


TaskFactory = Callable[[torch.nn.Module], Task]
TASKS: Registry[TaskFactory] = Registry(
    "training task", hint="Register one with register_task('{name}', factory), the factory taking the model")


def register_task(name: str, factory: TaskFactory) -> TaskFactory:
    """Registers ``factory(model) -> Task`` under ``name`` (once), for ``Trainer(model, task=name)``."""
    return TASKS.register(name, factory)


def create_task(task: str | Task, model: torch.nn.Module) -> Task:
    """The task ``task`` names, made for ``model`` (its heads score the loss); a :class:`Task` passes through."""
    if isinstance(task, Task):
        return task
    if not isinstance(task, str):
        raise TypeError(f"A task is a registered name ({TASKS.names()}) or a graphfuse.train.Task, got "
                        f"{type(task).__name__}")
    return TASKS.get(task)(model)


#: The Task class each built-in task name makes, to tell whether a task fits a model's ``task_name``.
BUILTIN_TASKS: dict[str, type[Task]] = {"classification": ClassificationTask, "multilabel": ClassificationTask,
                                        "regression": RegressionTask, "retrieval": RetrievalTask}


def check_task_fits(task: str | Task, model: torch.nn.Module, owner: str) -> None:
    """Refuses a built-in task, by name or object, for a model that declares another one as
    ``model.task_name`` (models from :func:`~graphfuse.models.create_model` do); tasks registered
    by the user, tasks of their own classes and models that declare none pass, as their fit is
    unknown. ``owner`` names the caller in the error."""
    declared = getattr(model, "task_name", None)
    expected = BUILTIN_TASKS.get(declared) if isinstance(declared, str) else None
    if expected is None or task == declared:
        return
    if isinstance(task, str):
        fits = task not in BUILTIN_TASKS
    else:
        fits = isinstance(task, expected) or not isinstance(task, tuple(BUILTIN_TASKS.values()))
    if not fits:
        name = task if isinstance(task, str) else task.name
        raise ValueError(f"{owner} got task={task!r}, but {type(model).__name__} was created for {declared!r} (its "
                         f"model.task_name): leave task= out to use {declared!r}, or create the model for "
                         f"{name!r} (graphfuse.models.create_model(..., task={name!r}))")


def _head_task(task_class: type[_HeadTask], multilabel: bool | None = None) -> TaskFactory:
    def factory(model: torch.nn.Module) -> Task:
        head = getattr(model, "head", None)
        if not callable(getattr(head, "loss", None)):
            raise TypeError(f"{task_class.__name__} scores a model's 'head' by its loss (a ClassificationHead or "
                            f"RegressionHead); {type(model).__name__} has {type(head).__name__}. Pass "
                            f"Trainer(task=...) a Task of your own instead")
        if multilabel is not None and getattr(head, "multilabel", None) != multilabel:
            raise ValueError(f"{type(model).__name__}'s head is {'multi-label' if head.multilabel else 'multi-class'}; "
                             f"build the model with the task it is trained for")
        return task_class(head, getattr(model, "unimodal", None), getattr(model, "unimodal_weight", 0.0))

    return factory


register_task("classification", _head_task(ClassificationTask, multilabel=False))
register_task("multilabel", _head_task(ClassificationTask, multilabel=True))
register_task("regression", _head_task(RegressionTask))
register_task("retrieval", lambda model: RetrievalTask())
