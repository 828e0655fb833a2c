"""A collated batch's forward and backward run without a host sync: torch.compile traces graph
models whole (no graph break), and the flat graph reads no tensor value."""
import pickle

import pytest
import torch

from graphfuse import debug
from graphfuse.data.layout import BatchLayout, batch_layout
from graphfuse.datasets import synthetic_samples
from graphfuse.models import create_model
from graphfuse.nn import FlatGraph, MultimodalOutput


@pytest.fixture(scope="module")
def fixed_batch(fusion_builder):
    """Four complete samples of one shape, as the builder collates them."""
    samples = synthetic_samples(4, tokens=3, grid=2, frames=3, seed=1)
    return fusion_builder.collate([fusion_builder.featurize(s) for s in samples])


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat"])
def test_forward_and_backward_have_no_graph_break(name, fusion_builder, fixed_batch):
    torch.manual_seed(0)
    model = create_model(name, builder=fusion_builder, num_classes=3, hidden_channels=16).train()
    target = torch.tensor([0, 1, 2, 0])

    def step(batch):
        output = model(batch)
        logits = output.output if isinstance(output, MultimodalOutput) else output
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        return loss.detach()

    torch._dynamo.reset()
    with torch._dynamo.config.patch(trace_autograd_ops=True):  # trace loss.backward() too
        explanation = torch._dynamo.explain(step)(fixed_batch)
    assert explanation.graph_break_count == 0, [reason.reason for reason in explanation.break_reasons]
    assert explanation.break_reasons == []
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_collate_attaches_the_layout(fixed_batch, batch, metadata):
    layout = batch_layout(fixed_batch)
    assert layout == BatchLayout.from_batch(fixed_batch)
    assert layout.counts["text"] == (3, 3, 3, 3) and layout.num_samples == 4
    assert layout.complete == {e for e in metadata[1] if e[0] != e[2]} and not layout.self_loops
    assert batch_layout(fixed_batch.to("cpu")) is layout
    assert batch_layout(pickle.loads(pickle.dumps(fixed_batch))) == layout  # from DataLoader workers
    assert batch_layout(fixed_batch.get_example(0)) is None
    graph = FlatGraph.from_batch(batch, metadata)
    assert graph.layout is batch_layout(batch)
    assert graph.dense == FlatGraph.from_batch(batch.get_example(0), metadata).dense
    assert graph.block_size == max(max(counts) for counts in graph.layout.counts.values())


def test_layout_that_does_not_fit_is_recomputed(batch, metadata):
    layout = batch_layout(batch)
    edges = dict(batch.edge_index_dict)
    edges["text", "to", "image"] = edges["text", "to", "image"][:, 1:]
    sizes = {t: batch[t].num_nodes for t in batch.node_types}
    graph = FlatGraph.from_dicts(metadata, sizes, edges, batch.batch_dict, batch.num_graphs, layout=layout)
    assert graph.layout is not layout
    assert not graph.dense[metadata[1].index(("text", "to", "image"))]


def test_debug_mode_checks_values_again(batch, metadata):
    """A layout skips the value checks; debug mode runs them (and restores the mode on exit)."""
    edges = dict(batch.edge_index_dict)
    bad = edges["text", "seq", "text"].clone()
    bad[0, 0] = 10_000
    edges["text", "seq", "text"] = bad
    sizes = {t: batch[t].num_nodes for t in batch.node_types}
    FlatGraph.from_dicts(metadata, sizes, edges, batch.batch_dict, batch.num_graphs, layout=batch_layout(batch))
    with debug.debug():
        assert debug.is_debug_enabled()
        with pytest.raises(ValueError, match="points outside"):
            FlatGraph.from_dicts(metadata, sizes, edges, batch.batch_dict, batch.num_graphs,
                                 layout=batch_layout(batch))
    assert not debug.is_debug_enabled()
    with debug.set_debug(True):
        assert debug.is_debug_enabled()
    assert not debug.is_debug_enabled()
