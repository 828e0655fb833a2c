"""Tiny shared fixtures of the fusion-layer tests: a tri-modal batch with missing modalities and its flat graphs."""

import pytest
import torch

from graphfuse.datasets import synthetic_samples
from graphfuse.nn import FlatGraph
from graphfuse.testing import tri_modal_builder


@pytest.fixture(scope="session")
def fusion_builder():
    return tri_modal_builder()


@pytest.fixture(scope="session")
def collate(fusion_builder):
    """``collate(samples)``: featurise raw samples and batch them."""
    return lambda samples: fusion_builder.collate([fusion_builder.featurize(s) for s in samples])


@pytest.fixture(scope="session")
def batch(collate):
    """Four samples: sample 1 has no audio, sample 2 no image (do not modify it in place)."""
    samples = synthetic_samples(4, tokens=5, grid=4, frames=6)
    samples[1].pop("audio")
    samples[2].pop("image")
    return collate(samples)


@pytest.fixture(scope="session")
def tiny_batch(collate):
    """Two small samples (14 nodes), the second without audio: for gradcheck."""
    samples = synthetic_samples(2, tokens=2, grid=2, frames=2)
    samples[1].pop("audio")
    return collate(samples)


@pytest.fixture(scope="session")
def metadata(fusion_builder):
    return fusion_builder.metadata()


@pytest.fixture
def flat_graph(batch, metadata):
    return FlatGraph.from_batch(batch, metadata)


@pytest.fixture
def sparse_graph(batch, metadata):
    return FlatGraph.from_batch(batch, metadata, dense=False)


@pytest.fixture
def features():
    """``features(graph, channels, dtype=float64, seed=0)``: random flat node features."""
    def make(graph, channels, dtype=torch.float64, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(graph.num_nodes, channels, generator=generator, dtype=dtype)
    return make


@pytest.fixture
def dicts(batch):
    """``dicts(channels, dtype=float64, seed=0)``: random ``x_dict`` with the batch's ``edge_index_dict`` and
    ``batch_dict`` (fresh copies)."""
    def make(channels, dtype=torch.float64, seed=0):
        generator = torch.Generator().manual_seed(seed)
        x_dict = {t: torch.randn(batch[t].num_nodes, channels, generator=generator, dtype=dtype)
                  for t in batch.node_types}
        edge_index_dict = {e: ei.clone() for e, ei in batch.edge_index_dict.items()}
        batch_dict = {t: batch[t].batch.clone() for t in batch.node_types}
        return x_dict, edge_index_dict, batch_dict
    return make


@pytest.fixture
def permute_sample():
    """``permute_sample(x_dict, edge_index_dict, batch_dict, node_type, sample, seed=0)``: shuffles the nodes of
    one sample within one node type (the batch vector stays sorted) and relabels the edges; returns the new dicts
    and ``perm`` with ``new[node_type] == old[node_type][perm]``."""
    def permute(x_dict, edge_index_dict, batch_dict, node_type, sample, seed=0):
        generator = torch.Generator().manual_seed(seed)
        n = x_dict[node_type].size(0)
        rows = (batch_dict[node_type] == sample).nonzero().flatten()
        assert rows.numel() > 1
        perm = torch.arange(n)
        perm[rows] = rows[torch.randperm(rows.numel(), generator=generator)]
        assert not torch.equal(perm, torch.arange(n))
        inverse = torch.argsort(perm)  # old index -> new index
        x_new = {**x_dict, node_type: x_dict[node_type][perm]}
        edges_new = {}
        for (src, rel, dst), ei in edge_index_dict.items():
            ei = ei.clone()
            if src == node_type:
                ei[0] = inverse[ei[0]]
            if dst == node_type:
                ei[1] = inverse[ei[1]]
            edges_new[src, rel, dst] = ei
        return x_new, edges_new, batch_dict, perm
    return permute


@pytest.fixture
def assert_no_leakage(features):
    """``assert_no_leakage(module, graph, channels, sample)``: perturbing one sample's features leaves the other
    samples' outputs exactly as they were."""
    def check(module, graph, channels, sample=1):
        x = features(graph, channels, torch.float32)
        mask = graph.node_batch == sample
        y = x.clone()
        y[mask] = y[mask] + 3.0 * torch.randn(int(mask.sum()), channels, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out, perturbed = module(x, graph), module(y, graph)
        assert torch.equal(out[~mask], perturbed[~mask])
        assert not torch.allclose(out[mask], perturbed[mask])
    return check
