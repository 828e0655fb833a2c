"""Modality drop-out: training samples lose whole modalities at random, so that a model learns to
predict from any subset of them (and no modality can carry the others through training).

Applied where batches are made (:class:`~graphfuse.train.data.GraphCollate`), to the featurised
node sets of each training sample, so it works alike for every model, graph or not: a dropped
modality is simply absent from the sample's graph, with no nodes and no edges, exactly as a
modality missing at test time is.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import torch

from graphfuse.checks import check_probability


class ModalityDropout:
    r"""With probability :math:`p`, a sample loses some of its modalities, never all of them.

    A sample with modalities :math:`\mathcal{M}` (:math:`|\mathcal{M}| \geq 2`) keeps them all
    with probability :math:`1 - p`; otherwise it drops a subset drawn uniformly among the
    non-empty proper subsets of :math:`\mathcal{M}` (one of the two modalities of a pair; one or
    two of three). A sample with a single modality is left as it is. ``p`` is thus the share of
    training samples that the model sees incomplete, whatever the number of modalities.

    Draws come from ``generator`` (default: torch's global one); the Trainer's batches give each
    sample its own, seeded by the run's seed, the sample's index and the epoch, so that runs repeat
    exactly whatever the ``DataLoader`` workers and DDP processes.

    Args:
        p (float): probability that a sample loses modalities, in ``[0, 1)``.
        modalities (Collection[str]): the keys that are modalities (e.g. ``builder.modalities``);
            other keys of a sample are never dropped.

    Example:
        >>> dropout = ModalityDropout(0.3, builder.modalities)
        >>> batch = builder.collate([dropout(builder.featurize(s)) for s in samples])
    """

    def __init__(self, p: float, modalities: Collection[str]) -> None:
        self.p = check_probability(p, "ModalityDropout 'p'")
        self.modalities = tuple(modalities)

    def __call__(self, sample: Mapping[str, Any], generator: torch.Generator | None = None) -> Mapping[str, Any]:
        present = [key for key in self.modalities if sample.get(key) is not None]
        if self.p == 0 or len(present) < 2 or float(torch.rand((), generator=generator)) >= self.p:
            return sample
        # Subsets as bit masks 1 .. 2^n - 2: every non-empty proper subset, equally likely.
        mask = int(torch.randint(1, 2 ** len(present) - 1, (), generator=generator))
        gone = {key for i, key in enumerate(present) if mask >> i & 1}
        return {key: value for key, value in sample.items() if key not in gone}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(p={self.p}, modalities={list(self.modalities)})"
