"""Measures over explanations: does a word attend to its own moment in time?"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graphfuse.data.items import split_item
from graphfuse.explain.explanation import Explanation

METHODS = ("rollout", "attention")


class NothingToMeasure(ValueError):
    """:func:`span_attention` found nothing to measure: the model recorded no attention, the batch
    has no timed nodes of the two types, or no sample holds the word with frames inside its span
    and inside another word's. The message says which."""


@dataclass(frozen=True)
class SpanAttention:
    """What :func:`span_attention` measured.

    Args:
        own: the mean weight the word gives one frame inside its own span.
        other: the mean weight it gives one frame inside another word's span.
        peers_own: the mean weight the other words give one frame inside their own spans.
        samples: how many samples held the word, with frames in its span and in another's.
    """

    own: float
    other: float
    peers_own: float
    samples: int

    @property
    def ratio(self) -> float:
        """``own / other``: how much more the word draws on its own span than on the others'."""
        return self.own / self.other if self.other > 0 else float("inf")

    @property
    def contrast(self) -> float:
        """``own / peers_own``: how much more the word draws on its span than the other words do on theirs."""
        return self.own / self.peers_own if self.peers_own > 0 else float("inf")


def _word_tokens(sample) -> list[str] | None:
    text = split_item(sample)[0].get("text") if sample is not None else None
    tokens = text.get("tokens") if isinstance(text, dict) else None
    return list(tokens) if isinstance(tokens, (list, tuple)) else None


def span_attention(explanations: Explanation | Sequence[Explanation], word: str, query: str = "text",
                   key: str = "audio", method: str = "rollout", layer: int = -1) -> SpanAttention:
    """How much more a timed ``word`` (a token of ``query`` nodes with a time span, e.g. a marker
    with the span of the word it marks) attends to the ``key`` frames inside its own span than to
    the frames inside the other words' spans, per frame, over every sample that holds it
    (:attr:`SpanAttention.ratio`), and than the other words attend to the frames of their own
    spans (:attr:`SpanAttention.contrast`).

    With ``method="rollout"`` the weights are the word's row of :meth:`Explanation.rollout`
    (what its final state draws on, through every layer and every path, the other words and
    the other modalities included); with ``"attention"``, its direct attention in ``layer``. A
    graph whose edges join each word only to the frames of its span (``TemporalAlignment``)
    gives the other words' frames no direct attention at all, and their rollout weight comes
    only through other nodes: the ratio is then mostly the wiring's, while the contrast (which
    word draws on its frames) is what the model learned. Frames are assigned by their midpoint.

    Samples are read from :attr:`Explanation.samples` (``{"text": {"tokens": [...]}}``); the spans
    and frame times from the graph (``time`` of both node types).
    """
    if method not in METHODS:
        raise ValueError(f"span_attention 'method' must be one of {METHODS}, got {method!r}")
    if isinstance(explanations, Explanation):
        explanations = [explanations]
    own_sum, other_sum, peers_sum, count = 0.0, 0.0, 0.0, 0
    for explanation in explanations:
        if not explanation.layers:
            raise NothingToMeasure("The model recorded no attention: it has no attention layers (conv='gcn' and "
                                   "'gated' and the baselines have none); measure a graph model with conv='gat' or "
                                   "'hgt'")
        for types in (query, key):
            if types not in explanation.graph.node_types or "time" not in explanation.graph[types]:
                raise NothingToMeasure(f"span_attention needs timed {types!r} nodes (a 'time' [N, 2] of spans), "
                                       f"which the batch lacks; give the text its word spans "
                                       f"(TextModality(spans=True))")
        for sample in range(explanation.num_samples):
            tokens = _word_tokens(explanation.samples[sample] if sample < len(explanation.samples) else None)
            if tokens is None or word not in tokens or explanation.num_nodes(sample, key) == 0:
                continue
            position = tokens.index(word)
            q_start, q_end = explanation.node_range(sample, query)
            k_start, k_end = explanation.node_range(sample, key)
            spans = explanation.graph[query].time[q_start:q_end]
            times = explanation.graph[key].time[k_start:k_end]
            middle = times.mean(-1)
            inside = (middle.unsqueeze(0) >= spans[:, :1]) & (middle.unsqueeze(0) < spans[:, 1:])  # [words, frames]
            own = inside[position]
            other = inside.clone()
            other[position] = False
            other = other.any(0) & ~own
            if not own.any() or not other.any():
                continue
            if method == "rollout":
                matrix, offsets = explanation.rollout(sample)
                rows = matrix[offsets[query][0]:offsets[query][1], offsets[key][0]:offsets[key][1]]
            else:
                rows = explanation.attention(sample, query, key, layer)
            own_sum += float(rows[position, own].mean())
            other_sum += float(rows[position, other].mean())
            peers = [float(rows[i, inside[i]].mean()) for i in range(len(tokens)) if i != position and inside[i].any()]
            peers_sum += sum(peers) / len(peers) if peers else float("nan")
            count += 1
    if count == 0:
        raise NothingToMeasure(f"No sample holds the word {word!r} with {key!r} frames inside its span and inside "
                               f"another word's span")
    return SpanAttention(own_sum / count, other_sum / count, peers_sum / count, count)
