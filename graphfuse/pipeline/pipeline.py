"""A graph builder, a model and what the model predicts, as one object to save, load and serve."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.parameter import UninitializedParameter

from graphfuse.checkpoint import REBUILD_ERRORS, CheckpointError, load_checkpoint, save_checkpoint
from graphfuse.checks import check_int
from graphfuse.config import as_json, short_repr
from graphfuse.data import GraphBuilder, NodeSet, PairGraphs
from graphfuse.models import create_model
from graphfuse.pipeline.folder import FORMAT, FORMAT_VERSION, WEIGHTS_FILE, read_config, write_folder
from graphfuse.pipeline.gallery import GalleryIndex
from graphfuse.train import create_task
from graphfuse.train.data import split_item
from graphfuse.train.distributed import check_device
from graphfuse.train.tasks import check_task_fits
from graphfuse.version import __version__

TASKS = ("classification", "multilabel", "regression", "retrieval")
NodeSets = Mapping[str, NodeSet]


class Pipeline:
    r"""A :class:`~graphfuse.GraphBuilder`, a model and its task, from raw samples to predictions;
    saved to a folder as JSON and safetensors (:meth:`save_pretrained`) and loaded back
    (:meth:`from_pretrained`) with no pickle and no code run from the folder.

    Args:
        builder (GraphBuilder): turns raw samples into graphs.
        model (torch.nn.Module): the trained model.
        task (str, optional): ``"classification"``, ``"multilabel"``, ``"regression"`` or
            ``"retrieval"``. (default: the model's ``task_name``)
        class_names (Sequence[str], optional): the name of each class (classification tasks),
            which :meth:`predict` gives as labels. (default: :obj:`None`, class indices)
        model_name (str, optional): the registered name the model is built by, for a model not
            made by :func:`~graphfuse.models.create_model` (which records it).
        model_kwargs (dict, optional): the JSON-able arguments it is built with (without the
            schema), with ``model_name``.

    Example:
        >>> pipeline = Pipeline(builder, model, class_names=["cat", "dog"])
        >>> pipeline.save_pretrained("my-pipeline")
        >>> pipeline = Pipeline.from_pretrained("my-pipeline")      # in any process
        >>> pipeline.predict([{"text": "a cat", "image": image}])["labels"]
        ['cat']
    """

    def __init__(self, builder: GraphBuilder, model: torch.nn.Module, task: str | None = None,
                 class_names: Sequence[str] | None = None, model_name: str | None = None,
                 model_kwargs: Mapping[str, Any] | None = None) -> None:
        if not isinstance(builder, GraphBuilder):
            raise TypeError(f"Pipeline 'builder' must be a GraphBuilder, got {type(builder).__name__}")
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Pipeline 'model' must be a torch.nn.Module, got {type(model).__name__}")
        task = getattr(model, "task_name", None) if task is None else task
        if task not in TASKS:
            raise ValueError(f"Pipeline 'task' must be one of {TASKS}, got {task!r}"
                             f"{' (the model names none: pass task=)' if task is None else ''}")
        check_task_fits(task, model, "Pipeline")
        self.builder, self.model, self.task = builder, model, task
        self.class_names = self._checked_class_names(class_names)
        if model_kwargs is not None and model_name is None:
            raise ValueError("Pipeline 'model_kwargs' needs 'model_name', the registered name they build")
        self.model_config = getattr(model, "creation_config", None) if model_name is None else {
            "name": model_name, "kwargs": dict(model_kwargs or {})}

    def _checked_class_names(self, class_names: Sequence[str] | None) -> list[str] | None:
        if class_names is None:
            return None
        if self.task not in ("classification", "multilabel"):
            raise ValueError(f"Pipeline 'class_names' apply to classification tasks, not task={self.task!r}")
        if isinstance(class_names, str) or not isinstance(class_names, Sequence) \
                or not all(isinstance(name, str) for name in class_names):
            raise TypeError(f"Pipeline 'class_names' must be a list of strings, got {short_repr(class_names)}")
        classes = getattr(getattr(self.model, "head", None), "out_channels", None)
        if classes is not None and len(class_names) != classes:
            raise ValueError(f"Pipeline got {len(class_names)} class names for a model of {classes} classes")
        return list(class_names)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (the CPU for a model without any)."""
        return next(self.model.parameters(), torch.empty(0)).device

    def to(self, device: str | torch.device) -> Pipeline:
        """Moves the model to ``device``; returns the pipeline."""
        self.model.to(check_device(device, "Pipeline.to 'device'"))
        return self

    # Saving and loading -------------------------------------------------------------------------
    def task_config(self) -> dict[str, Any]:
        """The task's metadata: ``{"name", "class_names"}``, and the retrieval sides' node types
        (``"query"``, ``"gallery"``) for retrieval."""
        config: dict[str, Any] = {"name": self.task, "class_names": self.class_names}
        if self.task == "retrieval":
            config.update(query=list(self.model.query_types), gallery=list(self.model.gallery_types))
        return config

    def get_config(self) -> dict[str, Any]:
        """What ``pipeline.json`` holds (besides the list of files): format, versions, task, model and
        builder, as plain JSON; settings that cannot be saved raise an error naming them."""
        if self.model_config is None:
            raise ValueError(f"Pipeline cannot save a {type(self.model).__name__} without knowing how to build it "
                             f"again: make the model with graphfuse.models.create_model (which records it), or pass "
                             f"Pipeline(..., model_name=<registered name>, model_kwargs={{...}})")
        name, kwargs = self.model_config["name"], self.model_config["kwargs"]
        for key, value in kwargs.items():
            try:
                as_json(value, f"The model's argument '{key}'")
            except TypeError as error:
                if isinstance(value, torch.nn.Module):  # e.g. encoders=: weights, not settings
                    raise TypeError(f"{error}. A module is saved by the code that builds it: register a model "
                                    f"factory that creates it (@graphfuse.models.register_model('my-model')) and "
                                    f"make the model with create_model('my-model', ...)") from None
                raise TypeError(f"{error}. Pass Pipeline(..., model_name={name!r}, model_kwargs={{...}}) with "
                                f"arguments that build the same model from plain values") from None
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "graphfuse_version": __version__,
                "task": self.task_config(), "model": {"name": name, "kwargs": as_json(kwargs, "model_kwargs")},
                "builder": self.builder.get_config()}

    def save_pretrained(self, folder: str | os.PathLike, overwrite: bool = False) -> Path:
        """Saves the pipeline into ``folder``: ``pipeline.json`` (settings and a list of the files with
        their SHA-256 digests), ``model.safetensors`` (the weights) and the builder's asset files.

        The folder is written beside its place and renamed into it once complete, so a failed save
        leaves nothing that looks like a pipeline. An existing folder is replaced only when it holds
        a saved pipeline and ``overwrite=True``; a folder holding other files is refused. Returns the
        folder's path."""
        folder = Path(folder)
        config = self.get_config()
        state = self.model.state_dict()
        lazy = [key for key, value in state.items() if isinstance(value, UninitializedParameter)]
        if lazy:
            raise ValueError(f"The model's parameters {lazy[:4]} have lazy sizes not set yet; run the model on one "
                             f"batch (or train it) before saving")
        state = {key: value.detach().cpu() for key, value in state.items()}

        def write_files(temporary: Path) -> None:
            self.builder.save_assets(temporary)
            save_checkpoint(temporary / WEIGHTS_FILE, state)

        write_folder(folder, config, write_files, overwrite)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device | None = None) -> Pipeline:
        """Loads the pipeline :meth:`save_pretrained` wrote into ``folder``, the model in evaluation
        mode on ``device`` (default: the CPU).

        Only JSON and safetensors are read: modalities, strategies, functions and the model are found
        by name in graphfuse's registries (a user function must be registered, by importing its
        module, before loading). A missing, damaged or replaced file, settings that do not build a
        builder and a model the weights fit, or a folder saved by a newer graphfuse, raise a
        :class:`~graphfuse.checkpoint.CheckpointError` naming the file and what is wrong."""
        device = check_device(device, "Pipeline.from_pretrained 'device'")
        folder = Path(folder)
        config = read_config(folder)
        where = folder / "pipeline.json"
        try:
            builder = GraphBuilder.from_config(config["builder"], folder)
        except REBUILD_ERRORS as error:
            raise CheckpointError(f"{where}: the graph builder could not be rebuilt: {error}") from None
        model_config, task = config["model"], config["task"]
        if not isinstance(model_config, Mapping) or not isinstance(model_config.get("kwargs"), Mapping) \
                or not isinstance(task, Mapping):
            raise CheckpointError(f"{where} has malformed 'model' or 'task' entries; the file is damaged, save the "
                                  f"pipeline again")
        try:
            model = create_model(model_config.get("name"), schema=builder.schema(), seed=0, **model_config["kwargs"])
        except REBUILD_ERRORS as error:
            raise CheckpointError(f"{where}: the model could not be rebuilt: {error}") from None
        _load_state(model, folder / WEIGHTS_FILE)
        model.to("cpu" if device is None else device).eval()
        try:
            return cls(builder, model, task=task.get("name"), class_names=task.get("class_names"))
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{where}: the 'task' entry does not fit the model: {error}") from None

    # Prediction ---------------------------------------------------------------------------------
    def featurize(self, samples: Sequence[Any]) -> list[NodeSets]:
        """The node sets of raw ``samples`` (or of ``(sample, target)`` pairs, targets ignored)."""
        if isinstance(samples, Mapping) or not isinstance(samples, Sequence) or len(samples) == 0:
            raise ValueError(f"Pipeline takes a non-empty list of samples, got {type(samples).__name__}"
                             f"{' (wrap one sample in a list)' if isinstance(samples, Mapping) else ''}")
        return [self.builder.featurize(split_item(item)[0]) for item in samples]

    @torch.no_grad()
    def _run(self, node_sets: Sequence[NodeSets], batch_size: int, forward: Callable[[Any], Tensor]) -> Tensor:
        """``forward(batch)`` over ``node_sets`` in batches of ``batch_size``, in evaluation mode, the
        rows concatenated on the CPU; every random generator is left as it was."""
        check_int(batch_size, "Pipeline 'batch_size'")
        device, training = self.device, self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                return torch.cat([forward(self.builder.collate(node_sets[i:i + batch_size]).to(device)).float().cpu()
                                  for i in range(0, len(node_sets), batch_size)])
        finally:
            self.model.train(training)

    def predict(self, samples: Sequence[Any], batch_size: int = 32, side: str | None = None) -> dict[str, Any]:
        """Predictions for raw ``samples``, deterministic (evaluation mode, no random draws, every
        generator left as it was):

        - classification: ``labels`` (class names, or indices without them) and ``probabilities``
          ``[N, K]`` (softmax);
        - multi-label: ``labels`` (a list of the labels present per sample) and ``probabilities``
          ``[N, K]`` (sigmoid);
        - regression: ``predictions`` ``[N, C]``;
        - retrieval: ``embeddings`` ``[N, D]`` of one ``side`` (``"query"`` or ``"gallery"``;
          default: the side whose node types the samples hold).
        """
        node_sets = self.featurize(samples)
        if self.task == "retrieval":
            side = self._side(node_sets) if side is None else side
            return {"embeddings": self._run(node_sets, batch_size, lambda batch: self.model.encode(batch, side))}
        if side is not None:
            raise ValueError(f"Pipeline.predict 'side' applies to retrieval, not task={self.task!r}")
        task = create_task(self.task, self.model)
        output = self._run(node_sets, batch_size,
                           lambda batch: task.outputs(self.model(batch), batch)[task.output_key])
        if self.task == "regression":
            return {"predictions": output}
        predicted = task.head.predict(output).tolist()
        names = self.class_names or list(range(output.size(1)))
        if self.task == "multilabel":
            labels = [[name for name, on in zip(names, row, strict=True) if on] for row in predicted]
            return {"labels": labels, "probabilities": torch.sigmoid(output)}
        return {"labels": [names[i] for i in predicted], "probabilities": torch.softmax(output, dim=-1)}

    def _side(self, node_sets: Sequence[NodeSets]) -> str:
        for side in ("query", "gallery"):
            if all(sample.keys() <= set(self.model.side_types(side)) for sample in node_sets):
                return side
        raise ValueError(f"Pipeline.predict could not tell which retrieval side the samples are: pass side='query' "
                         f"(node types {list(self.model.query_types)}) or side='gallery' "
                         f"(node types {list(self.model.gallery_types)})")

    # Retrieval ----------------------------------------------------------------------------------
    def _check_retrieval(self, what: str) -> None:
        if self.task != "retrieval":
            raise ValueError(f"Pipeline.{what} serves retrieval pipelines; this one is for {self.task!r}")

    def index(self, gallery_samples: Sequence[Any], batch_size: int = 32) -> GalleryIndex:
        """Embeds the gallery side of ``gallery_samples`` once, for :meth:`search`."""
        self._check_retrieval("index")
        node_sets = self.featurize(gallery_samples)
        embeddings = self._run(node_sets, batch_size, lambda batch: self.model.encode(batch, "gallery"))
        return GalleryIndex(embeddings, node_sets)

    def search(self, queries: Sequence[Any], gallery: GalleryIndex | Sequence[Any], k: int = 5,
               rerank: bool | int = False, batch_size: int = 32) -> dict[str, Tensor]:
        """The top-``k`` gallery items of each query: ``indices`` ``[Q, k]`` (rows of the gallery)
        and ``scores`` ``[Q, k]``, best first.

        Args:
            queries (Sequence): raw query samples.
            gallery (GalleryIndex or Sequence): an index from :meth:`index`, or raw gallery samples
                (indexed on the fly).
            k (int, optional): results per query. (default: :obj:`5`)
            rerank (bool or int, optional): rescore the dual encoder's top candidates with the
                model's re-ranker (:meth:`~graphfuse.models.GraphRetrievalModel.rerank`): ``True``
                the top ``k``, an integer that many. The scores are then the re-ranked logits
                (above every score not re-ranked); otherwise cosine similarities.
                (default: :obj:`False`)
        """
        self._check_retrieval("search")
        check_int(k, "Pipeline.search 'k'")
        if not isinstance(gallery, GalleryIndex):
            gallery = self.index(gallery, batch_size)
        query_sets = self.featurize(queries)
        similarity = self._run(query_sets, batch_size, lambda batch: self.model.encode(batch, "query"))
        if similarity.size(1) != gallery.embeddings.size(1):
            raise ValueError(f"Pipeline.search: this model embeds queries in {similarity.size(1)} dimensions, but the "
                             f"GalleryIndex holds {gallery.embeddings.size(1)}-dimensional embeddings, so another "
                             f"model built it; rebuild the index with this pipeline, pipeline.index(gallery_samples)")
        similarity = similarity @ gallery.embeddings.float().cpu().T
        if rerank:
            candidates = k if rerank is True else rerank
            check_int(candidates, "Pipeline.search 'rerank' (a number of candidates)")
            if not getattr(self.model, "reranks", False):
                raise ValueError("Pipeline.search(rerank=...) needs a model with a re-ranker; this one has none "
                                 "(built with rerank=False)")
            if gallery.node_sets is None:
                raise ValueError("Pipeline.search(rerank=...) joins each query with its candidates' samples, which "
                                 "this GalleryIndex does not hold (one read from a file holds embeddings only); "
                                 "build it with pipeline.index(gallery_samples)")
            pairs = PairGraphs(self.builder, query_sets, gallery.node_sets)
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                similarity = self.model.rerank(similarity.to(self.device), pairs, k=candidates).cpu()
        scores, indices = similarity.topk(min(k, similarity.size(1)), dim=1)
        return {"indices": indices, "scores": scores}

    def __repr__(self) -> str:
        classes = "" if self.class_names is None else f", classes={len(self.class_names)}"
        name = self.model_config["name"] if self.model_config else type(self.model).__name__
        return f"{self.__class__.__name__}(task={self.task!r}, model={name!r}{classes}, builder={self.builder!r})"


def _load_state(model: torch.nn.Module, path: Path) -> None:
    """Loads the weights file at ``path`` into ``model``, with one error naming every missing,
    unexpected and mis-shaped tensor."""
    try:
        state = load_checkpoint(path)["model"]
    except CheckpointError as error:
        raise CheckpointError(f"{error}; the pipeline folder is damaged") from None
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [f"{key} {tuple(state[key].shape)} (model: {tuple(value.shape)})" for key, value in expected.items()
              if key in state and not isinstance(value, UninitializedParameter) and state[key].shape != value.shape]
    if missing or unexpected or shapes:
        problems = [f"{label}: {items[:5]}{' ...' if len(items) > 5 else ''}"
                    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
                    if items]
        raise CheckpointError(f"{path} does not fit the model the pipeline's settings build ({'; '.join(problems)}); "
                              f"the weights and pipeline.json come from different pipelines, save the pipeline again")
    model.load_state_dict(state)
