"""A synthetic interaction suite after Liang et al. 2023 ("Quantifying & Modeling Multimodal
Interactions: An Information Decomposition Framework", NeurIPS 2023): the label's information is
redundant across modalities, unique to one, or synergistic (only in all of them together).

Each sample has two or three modalities (node types ``"m0"``, ``"m1"``, ``"m2"``), each a sequence
of ``slots`` time-stamped feature nodes listed in random order (the list order says nothing; the
time span says which slot a node belongs to). Slot :math:`s` of modality :math:`m` carries a
bit :math:`b_{m,s}`, written into its node as :math:`(2b_{m,s} - 1)\\,\\mathbf{u}_m` plus Gaussian
noise, with :math:`\\mathbf{u}_m` a fixed random unit direction per modality. The binary label is
the majority over slots of a per-slot value :math:`v_s`:

* ``"redundancy"``: every modality carries the same bits, :math:`b_{m,s} = v_s` (any one suffices);
* ``"uniqueness"``: :math:`v_s = b_{0,s}`, the other modalities carry independent bits;
* ``"synergy"``: :math:`v_s = b_{0,s} \\oplus b_{1,s} (\\oplus\\, b_{2,s})`, independent bits: each
  modality alone, or any pooled summary of each that forgets which node is in which slot, says
  nothing about the label.

:func:`interaction_builder` joins the modalities by :class:`~graphfuse.data.TemporalAlignment`, so a
graph model gets the slot pairing as edges; other methods see each node's time and must learn it.
"""
from __future__ import annotations

import numpy as np
import torch

from graphfuse.data import CrossEdges, FeatureModality, GraphBuilder, TemporalAlignment

INTERACTIONS = ("redundancy", "uniqueness", "synergy")


def modality_names(modalities: int) -> list[str]:
    return [f"m{i}" for i in range(modalities)]


def _check(interaction: str, modalities: int) -> None:
    if interaction not in INTERACTIONS:
        raise ValueError(f"interaction must be one of {INTERACTIONS}, got {interaction!r}")
    if modalities not in (2, 3):
        raise ValueError(f"the interaction suite has two- and three-modality datasets, got modalities={modalities}")


def interaction_dataset(num_samples: int, interaction: str = "synergy", modalities: int = 2, slots: int = 5,
                        dim: int = 8, noise: float = 0.5, seed: int = 0) -> list[tuple[dict, int]]:
    """``(sample, label)`` pairs; a sample maps each modality name to ``{"x": [slots, dim],
    "time": [slots, 2]}`` (rows in random order). ``noise`` is the per-feature standard deviation
    against a unit signal; ``slots`` must be odd so that the majority is defined."""
    _check(interaction, modalities)
    if slots < 1 or slots % 2 == 0:
        raise ValueError(f"'slots' must be a positive odd number (a majority over slots), got {slots}")
    directions = np.random.default_rng(12345).standard_normal((modalities, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    names = modality_names(modalities)
    data = []
    for _ in range(num_samples):
        bits = rng.integers(0, 2, (modalities, slots))
        if interaction == "redundancy":
            bits[1:] = bits[0]
            value = bits[0]
        elif interaction == "uniqueness":
            value = bits[0]
        else:
            value = np.bitwise_xor.reduce(bits, axis=0)
        label = int(value.sum() * 2 > slots)
        sample = {}
        for m, name in enumerate(names):
            order = rng.permutation(slots)
            start = order + rng.uniform(0.05, 0.2, slots)
            time = np.stack([start, order + 1.0 - rng.uniform(0.05, 0.2, slots)], axis=1)
            x = (2.0 * bits[m, order, None] - 1.0) * directions[m] + noise * rng.standard_normal((slots, dim))
            sample[name] = {"x": torch.tensor(x, dtype=torch.float32), "time": torch.tensor(time, dtype=torch.float32)}
        data.append((sample, label))
    return data


def interaction_builder(modalities: int = 2, dim: int = 8) -> GraphBuilder:
    """The builder of :func:`interaction_dataset`: one timed feature modality per name, every pair
    joined where time spans overlap (within a slot)."""
    names = modality_names(modalities)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return GraphBuilder({name: FeatureModality(dim, timed=True) for name in names},
                        cross=[CrossEdges(a, b, TemporalAlignment()) for a, b in pairs])
