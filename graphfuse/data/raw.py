"""A dataset of raw files, loaded and featurised item by item (in ``DataLoader`` workers when there
are any), for data that does not fit in memory featurised."""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy
import torch

from graphfuse.data.builder import GraphBuilder
from graphfuse.data.items import split_item

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
Loader = Callable[[Any], Any]


def load_file(path: str | os.PathLike) -> Any:
    """A file's content as a modality's raw input, chosen by its suffix: ``.npy`` -> a NumPy
    array, ``.pt`` -> a tensor (``weights_only``), an image (``.png``, ``.jpg``, ...) -> a PIL
    image (needs Pillow), ``.txt`` -> a string. Other files need a loader of your own
    (``RawDataset(..., load={"audio": my_loader})``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return numpy.load(path, allow_pickle=False)
    if suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)
    if suffix == ".txt":
        return path.read_text(encoding="utf-8")
    if suffix in IMAGE_SUFFIXES:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(f"Reading the image '{path}' needs Pillow (`pip install pillow`), or pass a loader "
                              f"of your own: RawDataset(..., load={{'image': my_loader}})") from None
        with Image.open(path) as image:
            image.load()
            return image
    raise ValueError(f"No built-in loader reads '{path}' (a '{suffix}' file; built in: .npy, .pt, .txt and images "
                     f"{', '.join(IMAGE_SUFFIXES)}); pass one: RawDataset(..., load={{'<modality>': my_loader}})")


class RawDataset(torch.utils.data.Dataset):
    r"""Samples whose inputs are files, each loaded and featurised (with :meth:`GraphBuilder.featurize
    <graphfuse.data.GraphBuilder.featurize>`) when it is indexed: with ``Trainer(num_workers=N)``
    (or a ``DataLoader``'s workers) that work runs in the worker processes, for data too large to
    featurise up front with :func:`~graphfuse.train.featurize_dataset`.

    An item is a sample or a ``(sample, target)`` pair (targets pass through). A value that is a
    :class:`pathlib.Path` (any ``os.PathLike``) is loaded with ``load``; plain strings stay as
    they are (they are text), unless ``load`` names their modality. Indexing gives the featurised
    node sets (and the target), which the Trainer's batches take as they are.

    Args:
        items (Sequence): the samples or ``(sample, target)`` pairs, e.g.
            ``[({"image": Path("cat.png"), "text": "a cat"}, 3), ...]`` or a
            :func:`~graphfuse.data.from_columns` sequence.
        builder (GraphBuilder): featurises the loaded samples.
        load (Callable or Mapping[str, Callable], optional): ``load(path) -> raw input`` for every
            path, or modality -> loader, applied to every (non-``None``) value of that modality,
            strings included (other modalities' paths go to :func:`load_file`).
            (default: :func:`load_file`)

    With ``DataLoader``'s ``spawn`` start method (the default on macOS and Windows) the dataset
    is pickled into each worker: give module-level loaders, not lambdas.

    Example:
        >>> items = [({"image": Path("img/0.png"), "audio": Path("wav/0.npy"), "text": "a dog"}, 1), ...]
        >>> Trainer(model, builder, num_workers=4).fit(RawDataset(items, builder))
    """

    def __init__(self, items: Sequence[Any], builder: GraphBuilder,
                 load: Loader | Mapping[str, Loader] | None = None) -> None:
        if not hasattr(items, "__len__") or not hasattr(items, "__getitem__"):
            raise TypeError(f"RawDataset 'items' must be a sequence of samples or (sample, target) pairs, got "
                            f"{type(items).__name__}")
        if not isinstance(builder, GraphBuilder):
            raise TypeError(f"RawDataset 'builder' must be the GraphBuilder of the data, got {type(builder).__name__}")
        if isinstance(load, Mapping):
            unknown = [key for key in load if key not in builder.modalities]
            if unknown:
                raise ValueError(f"RawDataset 'load' names {unknown}, which are not modalities of the builder "
                                 f"{list(builder.modalities)}")
            if not all(callable(loader) for loader in load.values()):
                raise TypeError("RawDataset 'load' must map each modality to a callable path -> raw input")
        elif load is not None and not callable(load):
            raise TypeError(f"RawDataset 'load' must be a callable path -> raw input or a mapping modality -> "
                            f"callable, got {type(load).__name__}")
        self.items, self.builder, self.load = items, builder, load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        sample, target = split_item(self.items[index])
        loaded = {key: self._loaded(key, value) for key, value in sample.items()}
        nodes = self.builder.featurize(loaded)
        return nodes if target is None else (nodes, target)

    def _loaded(self, key: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(self.load, Mapping) and key in self.load:
            return self.load[key](value)
        if isinstance(value, os.PathLike):
            return (self.load if callable(self.load) else load_file)(value)
        return value

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)} items, load={self.load!r})"
