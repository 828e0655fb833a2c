"""Checks shared by the fusion-layer tests, as fixtures returning callables."""
import pytest
import torch

from graphfuse.datasets import synthetic_samples
from graphfuse.nn import FlatGraph


@pytest.fixture(scope="session")
def single_node_batch(collate):
    """Sample 0 is one text token and nothing else; sample 1 is a full tri-modal sample."""
    samples = synthetic_samples(2, tokens=3, grid=2, frames=2)
    samples[0] = {"text": "a"}
    batch = collate(samples)
    assert batch["text"].ptr.tolist()[:2] == [0, 1] and batch["image"].ptr.tolist()[:2] == [0, 0]
    return batch


@pytest.fixture(scope="session")
def no_audio_batch(collate):
    """Three samples, none with audio (the second without image either)."""
    samples = synthetic_samples(3, tokens=3, grid=2, frames=2)
    for sample in samples:
        sample.pop("audio")
    samples[1].pop("image")
    return collate(samples)


@pytest.fixture
def gradcheck():
    """``gradcheck(conv, x, graph)``: float64 gradcheck w.r.t. the input and every parameter."""
    def check(conv, x, graph):
        names = [name for name, _ in conv.named_parameters()]
        values = [p.detach().clone().requires_grad_() for _, p in conv.named_parameters()]

        def forward(x, *params):
            return torch.func.functional_call(conv, dict(zip(names, params, strict=True)), (x, graph))

        assert torch.autograd.gradcheck(forward, (x.clone().requires_grad_(), *values), eps=1e-6, atol=1e-5)
    return check


@pytest.fixture
def assert_batched_equals_single(features):
    """``assert_batched_equals_single(conv, batch, metadata, channels)``: every sample's output in the batch equals
    the output of that sample alone (dense and sparse graphs)."""
    def check(conv, batch, metadata, channels):
        for dense in (True, False):
            graph = FlatGraph.from_batch(batch, metadata, dense=dense)
            x = features(graph, channels)
            out = conv(x, graph)
            assert torch.isfinite(out).all()
            for sample in range(graph.num_samples):
                single = batch.get_example(sample)
                alone = FlatGraph.from_batch(single, metadata, dense=dense)
                mask = graph.node_batch == sample
                torch.testing.assert_close(conv(x[mask], alone), out[mask])
    return check


@pytest.fixture
def assert_missing_type_ok(features):
    """``assert_missing_type_ok(conv, batch, metadata, channels, out_channels)``: a node type with no nodes in the
    whole batch gets an empty output, and leaving it out of the dicts gives the same outputs."""
    def check(conv, batch, metadata, channels, out_channels):
        graph = FlatGraph.from_batch(batch, metadata)
        assert graph.num_nodes_per_type[metadata[0].index("audio")] == 0
        x_dict = graph.unflatten(features(graph, channels))
        out = conv(x_dict, batch.edge_index_dict, batch.batch_dict)
        assert out["audio"].shape == (0, out_channels)
        present = {t: x for t, x in x_dict.items() if t != "audio"}
        edges = {e: ei for e, ei in batch.edge_index_dict.items() if "audio" not in (e[0], e[2])}
        batches = {t: b for t, b in batch.batch_dict.items() if t != "audio"}
        sparse = FlatGraph.from_dicts(metadata, {t: x.size(0) for t, x in present.items()}, edges, batches,
                                      dense=False)
        without = conv(present, sparse)
        for t in present:
            assert torch.isfinite(out[t]).all()
            torch.testing.assert_close(without[t], out[t])
    return check


@pytest.fixture
def assert_permutation_equivariant(dicts, permute_sample, metadata):
    """``assert_permutation_equivariant(conv, channels)``: shuffling one sample's nodes of one type (edges
    relabelled) shuffles that type's outputs the same way and leaves the rest unchanged."""
    def check(conv, channels, node_type="image", sample=3):
        x_dict, edge_index_dict, batch_dict = dicts(channels)
        out = conv(x_dict, edge_index_dict, batch_dict)
        x_new, edges_new, batch_new, perm = permute_sample(x_dict, edge_index_dict, batch_dict, node_type, sample)
        permuted = conv(x_new, edges_new, batch_new)
        for t in out:
            expected = out[t][perm] if t == node_type else out[t]
            torch.testing.assert_close(permuted[t], expected)
    return check


@pytest.fixture
def assert_bf16_close(features):
    """``assert_bf16_close(conv, graph, channels)``: under CPU bf16 autocast the layer runs and stays close to
    float32 (a loose relative tolerance)."""
    def check(conv, graph, channels):
        x = features(graph, channels, torch.float32)
        with torch.no_grad():
            reference = conv(x, graph)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = conv(x, graph)
        assert out.shape == reference.shape
        assert torch.isfinite(out).all()
        error = (out.float() - reference).norm() / reference.norm()
        assert error < 0.05, f"bf16 relative error {error:.3g}"
    return check
