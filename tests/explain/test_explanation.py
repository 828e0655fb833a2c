import pytest
import torch
from torch_geometric.explain import HeteroExplanation

from graphfuse.explain import explain


@pytest.fixture
def explanation(make_model, builder, samples):
    return explain(make_model("graph-gat", heads=2), samples, builder=builder)


def test_attention_is_the_layers_edge_weights_laid_out_per_sample(explanation):
    layer = explanation.layers[-1]
    edge_index, alpha = layer.weights[("image", "to", "text")]
    start_text, _ = explanation.node_range(2, "text")
    start_image, _ = explanation.node_range(2, "image")
    matrix = explanation.attention(2, "text", "image")
    assert matrix.shape == (explanation.num_nodes(2, "text"), explanation.num_nodes(2, "image"))
    for e in range(edge_index.size(1)):
        dst, src = int(edge_index[1, e]), int(edge_index[0, e])
        if explanation.node_range(2, "text")[0] <= dst < explanation.node_range(2, "text")[1]:
            assert float(matrix[dst - start_text, src - start_image]) == pytest.approx(float(alpha[e].mean()))
    head = explanation.attention(2, "text", "image", head=1)
    assert not torch.equal(head, matrix)


def test_node_softmax_shares_each_nodes_attention_over_every_relation(explanation):
    # Per head, what a text node gives every source (its own tokens, patches, frames, itself) sums to 1.
    # The last layer in which text meets each node type is the fusion block.
    total = sum(explanation.attention(0, "text", key).sum(1) for key in ("text", "image", "audio"))
    torch.testing.assert_close(total, torch.ones_like(total))


def test_a_missing_modality_has_an_empty_map(explanation):
    assert explanation.attention(1, "text", "audio").shape == (explanation.num_nodes(1, "text"), 0)


def test_rollout_rows_are_distributions_and_no_residual_mixing_is_the_identity(explanation):
    matrix, offsets = explanation.rollout(0)
    total = sum(end - start for start, end in offsets.values())
    assert matrix.shape == (total, total)
    torch.testing.assert_close(matrix.sum(1), torch.ones(total))
    assert (matrix >= 0).all()
    identity, _ = explanation.rollout(0, residual=1.0)
    torch.testing.assert_close(identity, torch.eye(total))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        explanation.rollout(0, residual=2)


def test_to_pyg_is_a_valid_hetero_explanation_of_one_sample(explanation):
    pyg = explanation.to_pyg(2)
    assert isinstance(pyg, HeteroExplanation) and pyg.validate_masks()
    for node_type in ("text", "image", "audio"):
        assert pyg[node_type].node_mask.shape == (explanation.num_nodes(2, node_type), 1)
        torch.testing.assert_close(pyg[node_type].node_mask[:, 0], explanation.sample_attributions(2)[node_type])
    edges = pyg["image", "to", "text"]
    matrix = explanation.attention(2, "text", "image")  # the one layer that reads this relation
    torch.testing.assert_close(edges.edge_mask, matrix[edges.edge_index[1], edges.edge_index[0]])
    # Gradient x input is signed: PyG's subgraph keeps the nodes that speak for the prediction.
    subgraph = pyg.get_explanation_subgraph()
    assert subgraph["text"].num_nodes == int((pyg["text"].node_mask > 0).sum())


@pytest.mark.parametrize("call, error, message", [
    (lambda e: e.attention(5, "text", "image"), IndexError, r"holds 3 samples"),
    (lambda e: e.attention(0, "text", "image", layer=3), IndexError, "in 1 layers"),
    (lambda e: e.attention(0, "text", "image", head=4), IndexError, "has 2 heads"),
    (lambda e: e.attention(0, "text", "nothing"), ValueError, "No layer has 'text' nodes attend to 'nothing'"),
    (lambda e: e.node_range(0, "nothing"), KeyError, "not in the batch"),
])
def test_bad_lookups_say_what_exists(explanation, call, error, message):
    with pytest.raises(error, match=message):
        call(explanation)


def test_gcn_models_have_no_attention_to_show(make_model, builder, samples):
    explanation = explain(make_model("graph-gcn"), samples, builder=builder)
    with pytest.raises(ValueError, match="conv='gat' or 'hgt'"):
        explanation.attention(0, "text", "image")
    with pytest.raises(ValueError, match="no attention"):
        explanation.rollout(0)
    assert "edge_mask" not in explanation.to_pyg(0)["image", "to", "text"]
