"""From datasets of samples to batches the training engine feeds a model.

A dataset is any sequence whose items are a sample (a mapping from modality to raw input or
:class:`~graphfuse.NodeSet`, as :meth:`graphfuse.GraphBuilder.featurize` takes) or a
``(sample, target)`` pair. The engine wraps it in :class:`IndexedDataset` so each batch knows
which samples it holds (evaluation under DDP uses that to drop the copies its sampler pads with).
"""
from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from graphfuse.data import GraphBuilder
from graphfuse.data.items import split_item
from graphfuse.train.modality_dropout import ModalityDropout


def stack_targets(targets: Sequence[Any]) -> Tensor:
    """Targets of a batch as one tensor: integers give a ``long`` ``[B]``, floats a float ``[B]``,
    equal-length sequences or tensors ``[B, ...]``."""
    try:
        if all(isinstance(t, Tensor) for t in targets):
            stacked = torch.stack([t.detach() for t in targets])
        else:
            stacked = torch.as_tensor(targets)
        return stacked.long() if stacked.dtype == torch.bool else stacked  # True/False labels are classes 1/0
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"Targets of one batch could not be stacked into a tensor ({error}); give every sample a "
                         f"target of the same shape: an int class, a float, or a fixed-length vector") from None


def check_dataset(data: Any, role: str = "training") -> None:
    """Refuses ``data`` that is not a non-empty sequence of items; ``role`` names it in errors."""
    # A mapping has __len__ and __getitem__, but items are read by position (data[0], data[1], ...): unless
    # those are its keys, that fails deep inside the data loader.
    if isinstance(data, Mapping) and not all(position in data for position in range(len(data))):
        raise TypeError(f"The {role} data must be a sequence (a list or a torch Dataset) of samples or (sample, "
                        f"target) pairs, got a {type(data).__name__}; pass a list of its items, e.g. "
                        f"list(data.values()), or [sample] for a single sample")
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"The {role} data must be a sequence (a list or a torch Dataset with __len__) of samples or "
                        f"(sample, target) pairs, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"The {role} data is empty; give at least one sample")


class IndexedDataset(torch.utils.data.Dataset):
    """``(key, item)`` of any sequence, where ``key`` is what the sampler gave: an index, or
    ``(index, epoch, keep_one_of)`` from an :class:`EpochSampler`; ``role`` names it in errors
    (``"training"``, ...)."""

    def __init__(self, data: Sequence[Any], role: str = "training") -> None:
        check_dataset(data, role)
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: int | tuple) -> tuple[int | tuple, Any]:
        return key, self.data[key[0] if isinstance(key, tuple) else key]


class EpochSampler(torch.utils.data.Sampler):
    """The indices of ``sampler`` tagged with the epoch and the modalities modality drop-out must
    leave one of, ``(index, epoch, keep_one_of)``, so that what is drawn for a sample in an epoch
    depends on the sample, the epoch and that set alone: the same in ``DataLoader`` workers (which
    see the keys, not later changes to the collate function) as in the main process, and on every
    process of a DDP run. ``set_epoch`` passes through to ``sampler``; ``keep_one_of`` (default
    :obj:`None`: any modality) is set between epochs."""

    def __init__(self, sampler: torch.utils.data.Sampler) -> None:
        self.sampler, self.epoch = sampler, 0
        self.keep_one_of: tuple[str, ...] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((index, self.epoch, self.keep_one_of) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class GraphCollate:
    """A ``collate_fn`` turning ``(key, item)`` pairs (from :class:`IndexedDataset`) into one batched graph.

    The batch is :meth:`GraphBuilder.collate` of the samples, with ``batch.y`` (stacked targets,
    when the items carry them), ``batch.sample_index`` (``[B]``, the items' dataset indices) and,
    with ``keep_samples=True``, ``batch.node_sets`` (the featurised samples, which a re-ranker
    combines into query + candidate graphs).

    Args:
        builder (GraphBuilder): turns samples into graphs.
        keep_samples (bool, optional): attach the featurised samples. (default: :obj:`False`)
        check_target (Callable, optional): called on the stacked targets, on the CPU before
            the batch moves to a device, to reject bad targets early and cheaply.
        modality_dropout (float, optional): probability that a sample loses each of its
            modalities, never all (:class:`~graphfuse.train.ModalityDropout`; for training
            batches). What a sample loses is drawn from ``seed``, its index and the epoch of its
            key (see :class:`EpochSampler`), so runs repeat whatever the workers and processes;
            it keeps one of the key's ``keep_one_of`` modalities at least.
            (default: :obj:`0.0`)
        seed (int, optional): the seed of modality drop-out. (default: :obj:`0`)
    """

    def __init__(self, builder: GraphBuilder, keep_samples: bool = False, check_target=None,
                 modality_dropout: float = 0.0, seed: int = 0) -> None:
        self.builder, self.keep_samples, self.check_target = builder, keep_samples, check_target
        self.modality_dropout = ModalityDropout(modality_dropout, builder.modalities)
        self.seed = seed

    def __call__(self, items: Sequence[tuple[int, Any]]) -> Batch:
        if items and not _is_keyed(items[0]):  # the first item only: a DataLoader's batch comes from one dataset
            raise TypeError(f"GraphCollate takes the (index, item) pairs of graphfuse.train.IndexedDataset, got "
                            f"{_describe_item(items[0])}; wrap the dataset, DataLoader(IndexedDataset(data), "
                            f"collate_fn=GraphCollate(builder)), or batch samples without targets with "
                            f"collate_fn=builder.collate")
        keys, indices, samples, targets = [], [], [], []
        for key, item in items:
            index, epoch, keep_one_of = key if isinstance(key, tuple) else (key, 0, None)
            sample, target = split_item(item)
            keys.append((int(index), int(epoch), keep_one_of))
            indices.append(int(index))
            samples.append(sample)
            targets.append(target)
        node_sets = self.builder.node_sets_many(samples)  # a frozen encoder runs once per batch
        if self.modality_dropout.p:
            node_sets = [self.modality_dropout(nodes, torch.Generator().manual_seed(
                hash((self.seed, epoch, index)) & (2 ** 63 - 1)), keep_one_of)
                for nodes, (index, epoch, keep_one_of) in zip(node_sets, keys, strict=True)]
        batch = self.builder.collate(node_sets)
        batch.sample_index = torch.tensor(indices, dtype=torch.long)
        labelled = [t is not None for t in targets]
        if any(labelled):
            if not all(labelled):
                raise ValueError("Some items of this batch have a target and some do not; give every sample a "
                                 "target (a (sample, target) pair) or none")
            batch.y = stack_targets(targets)
            if self.check_target is not None:
                self.check_target(batch.y)
        if self.keep_samples:
            batch.node_sets = node_sets
        return batch


def _is_keyed(item: Any) -> bool:
    """Whether ``item`` is ``(key, item)`` as :class:`IndexedDataset` gives it, the key an index
    or an :class:`EpochSampler` tuple ``(index, epoch, keep_one_of)``."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        return False
    key = item[0]
    try:
        operator.index(key[0] if isinstance(key, tuple) and key else key)  # int, numpy or 0-d tensor index
    except TypeError:
        return False
    return True


def _describe_item(item: Any) -> str:
    if isinstance(item, Mapping):
        return "a sample (a mapping from modality to input)"
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], Mapping):
        return "a (sample, target) pair"
    return f"an item of type {type(item).__name__}"


#: Samples :func:`featurize_dataset` hands the builder at once (a pretrained encoder batches within them).
FEATURIZE_CHUNK = 256


def featurize_dataset(builder: GraphBuilder, data: Sequence[Any], progress: bool = True) -> list[Any]:
    """``data`` with every sample featurised once (targets kept), so that epochs only batch.

    Featurising (tokenising, cutting patches, log-mel frames, running a frozen encoder) costs far
    more per sample than batching; do it once for data that fits in memory, or in ``DataLoader``
    workers otherwise. Samples go to :meth:`GraphBuilder.featurize_many` in chunks of
    :data:`FEATURIZE_CHUNK`, so a frozen encoder runs on batches.
    """
    featurized = []
    with tqdm(total=len(data), desc="featurize", disable=not progress, leave=False) as bar:
        for start in range(0, len(data), FEATURIZE_CHUNK):
            items = [split_item(data[index]) for index in range(start, min(start + FEATURIZE_CHUNK, len(data)))]
            for nodes, (_, target) in zip(builder.featurize_many([sample for sample, _ in items]), items, strict=True):
                featurized.append(nodes if target is None else (nodes, target))
            bar.update(len(items))
    return featurized
