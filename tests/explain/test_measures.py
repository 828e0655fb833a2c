import pytest
import torch
from torch_geometric.data import Batch, HeteroData

from graphfuse.explain import Explanation, LayerAttention, span_attention
from graphfuse.explain.measures import NothingToMeasure

TEXT_AUDIO = ("audio", "to", "text")


def _explanation(weights):
    """Two timed words (spans 0-1 s and 1-2 s) and four frames of half a second, the words
    attending to every frame with ``weights`` [2, 4] (one head)."""
    graph = HeteroData()
    graph["text"].x = torch.tensor([1, 2])
    graph["text"].time = torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    graph["audio"].x = torch.zeros(4, 3)
    graph["audio"].time = torch.tensor([[0.0, 0.5], [0.5, 1.0], [1.0, 1.5], [1.5, 2.0]])
    words, frames = torch.meshgrid(torch.arange(2), torch.arange(4), indexing="ij")
    edge_index = torch.stack([frames.flatten(), words.flatten()])
    graph[TEXT_AUDIO].edge_index = edge_index
    batch = Batch.from_data_list([graph])
    layer = LayerAttention("fusion.conv", 0, {TEXT_AUDIO: (edge_index, torch.as_tensor(weights).reshape(-1, 1))})
    return Explanation(graph=batch, kind="classification", target=torch.tensor([0]), score=torch.tensor([1.0]),
                       prediction=torch.tensor([[1.0]]), layers=[layer],
                       node_attributions={"text": torch.zeros(2), "audio": torch.zeros(4)}, contributions={},
                       samples=[{"text": {"tokens": ["keep", "skip"], "spans": [[0, 1], [1, 2]]}}])


def test_the_ratio_and_contrast_of_known_attention():
    explanation = _explanation([[0.4, 0.4, 0.1, 0.1],    # keep: its own frames 0.4 each, the other's 0.1
                                [0.25, 0.25, 0.25, 0.25]])  # skip: evenly
    measured = span_attention(explanation, "keep", method="attention")
    assert (measured.own, measured.other, measured.peers_own, measured.samples) == pytest.approx((0.4, 0.1, 0.25, 1))
    assert measured.ratio == pytest.approx(4.0) and measured.contrast == pytest.approx(1.6)
    skip = span_attention([explanation, explanation], "skip", method="attention")
    assert skip.ratio == pytest.approx(0.25 / 0.25) and skip.contrast == pytest.approx(0.25 / 0.4)
    assert skip.samples == 2


def test_rollout_adds_the_residual_path():
    explanation = _explanation([[0.4, 0.4, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    # One layer: the word's row of 0.5 I + 0.5 A; frames keep their own state only.
    measured = span_attention(explanation, "keep")
    assert (measured.own, measured.other) == pytest.approx((0.2, 0.05))


def test_nothing_to_measure_is_an_error_naming_the_word():
    explanation = _explanation([[0.25] * 4, [0.25] * 4])
    with pytest.raises(NothingToMeasure, match="No sample holds the word 'gone'"):
        span_attention(explanation, "gone")
    with pytest.raises(ValueError, match="must be one of") as raised:
        span_attention(explanation, "keep", method="flow")
    assert not isinstance(raised.value, NothingToMeasure)  # a wrong argument, not an empty measure
    without_attention = _explanation([[0.25] * 4, [0.25] * 4])
    without_attention.layers = []
    with pytest.raises(NothingToMeasure, match="The model recorded no attention"):
        span_attention(without_attention, "keep")
    del explanation.graph["text"].time
    with pytest.raises(NothingToMeasure, match=r"TextModality\(spans=True\)"):
        span_attention(explanation, "keep")
