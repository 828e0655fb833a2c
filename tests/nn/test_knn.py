import pytest
import torch
import torch.nn.functional as F

from graphfuse.nn import DynamicKNNEdges, FlatGraph, RelationalGCNConv
from graphfuse.nn.knn import top_k

CROSS = [("text", "to", "image"), ("image", "to", "text"), ("text", "to", "audio"), ("audio", "to", "text"),
         ("image", "to", "audio"), ("audio", "to", "image")]


@pytest.mark.parametrize("k", [1, 3, 100])
def test_edges_stay_within_samples_and_count(k, metadata, flat_graph, features):
    knn = DynamicKNNEdges(k, metadata)
    assert knn.relations == CROSS
    edges = knn.edges(features(flat_graph, 8), flat_graph)
    assert list(edges) == CROSS
    node_types = list(metadata[0])
    batch = flat_graph.unflatten(flat_graph.node_batch)
    for (src, _, dst), ei in edges.items():
        assert ei.dtype == torch.long
        assert torch.equal(batch[src][ei[0]], batch[dst][ei[1]])  # never across samples
        n_src = torch.bincount(batch[src], minlength=flat_graph.num_samples)
        expected = torch.minimum(n_src, torch.tensor(k))[batch[dst]]
        received = torch.bincount(ei[1], minlength=flat_graph.num_nodes_per_type[node_types.index(dst)])
        assert torch.equal(received, expected)
        assert torch.unique(ei, dim=1).size(1) == ei.size(1)  # no repeated edge
        assert bool((ei[1, 1:] >= ei[1, :-1]).all())  # each destination's neighbours together, in order


def test_neighbours_are_top_cosine(metadata):
    generator = torch.Generator().manual_seed(0)
    sizes = {"text": 5, "image": 7}
    batches = {"text": torch.tensor([0, 0, 0, 1, 1]), "image": torch.tensor([0, 0, 0, 0, 1, 1, 1])}
    graph = FlatGraph.from_dicts(metadata, sizes, {}, batches)
    x = torch.randn(graph.num_nodes, 6, generator=generator)
    x_dict = graph.unflatten(x)
    edges = DynamicKNNEdges(2, metadata, relations=[("image", "to", "text")]).edges(x, graph)
    ei = edges["image", "to", "text"]
    similarity = F.normalize(x_dict["text"], dim=-1) @ F.normalize(x_dict["image"], dim=-1).T
    for i in range(5):
        same = (batches["image"] == batches["text"][i]).nonzero().flatten()
        best = same[similarity[i, same].topk(2).indices]
        assert set(ei[0, ei[1] == i].tolist()) == set(best.tolist())


def test_forward_replaces_only_the_chosen_relations(metadata, flat_graph, features):
    graph = DynamicKNNEdges(2, metadata)(features(flat_graph, 8), flat_graph)
    assert isinstance(graph, FlatGraph) and graph.num_nodes == flat_graph.num_nodes
    for r, edge_type in enumerate(metadata[1]):
        if edge_type in CROSS:
            assert not graph.dense[r]
        else:
            assert torch.equal(graph.edge_index[r], flat_graph.edge_index[r])


def test_no_gradient_through_selection_but_layers_learn(metadata, flat_graph, features):
    knn = DynamicKNNEdges(2, metadata)
    conv = RelationalGCNConv(8, 4, metadata)
    x = features(flat_graph, 8, torch.float32).requires_grad_()
    edges = knn.edges(x, flat_graph)
    assert all(not ei.requires_grad for ei in edges.values())
    conv(x, knn(x, flat_graph)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_errors(metadata, flat_graph):
    with pytest.raises(ValueError, match="'k'"):
        DynamicKNNEdges(0, metadata)
    with pytest.raises(ValueError, match="oops"):
        DynamicKNNEdges(2, metadata, relations=[("text", "oops", "image")])
    with pytest.raises(ValueError, match="at least one relation"):
        DynamicKNNEdges(2, (["text"], [("text", "seq", "text")]))
    other = DynamicKNNEdges(2, (["text", "image"], [("text", "to", "image")]))
    with pytest.raises(ValueError, match="edge types"):
        other(torch.randn(flat_graph.num_nodes, 4), flat_graph)


def test_repr(metadata):
    knn = DynamicKNNEdges(3, metadata, relations=[("text", "to", "image")])
    assert repr(knn) == "DynamicKNNEdges(k=3, relations=[('text', 'to', 'image')])"


def test_similarity_blocks_are_as_long_as_their_own_node_types(metadata, monkeypatch):
    """Audio far longer than text and image: a block is [B, L_dst, L_src] of its own two node types, never
    [B, frames, frames] (60,000 frames asked for 43 GB)."""
    counts = {"text": (3, 2), "image": (4, 3), "audio": (2000, 1000)}
    batches = {t: torch.repeat_interleave(torch.arange(2), torch.tensor(c)) for t, c in counts.items()}
    graph = FlatGraph.from_dicts(metadata, {t: sum(c) for t, c in counts.items()}, {}, batches)
    x = torch.randn(graph.num_nodes, 6, generator=torch.Generator().manual_seed(0))
    blocks, einsum = [], torch.einsum
    monkeypatch.setattr(torch, "einsum", lambda *args: blocks.append(einsum(*args)) or blocks[-1])
    edges = DynamicKNNEdges(2, metadata).edges(x, graph)
    assert sorted(tuple(block.shape) for block in blocks) == [(2, 4, 3), (2, 2000, 3), (2, 2000, 4)]
    x_dict = graph.unflatten(x)
    similarity = F.normalize(x_dict["audio"], dim=-1) @ F.normalize(x_dict["image"], dim=-1).T
    ei = edges["image", "to", "audio"]
    for frame in (0, 1999, 2000, 2999):
        same = (batches["image"] == batches["audio"][frame]).nonzero().flatten()
        assert set(ei[0, ei[1] == frame].tolist()) == set(same[similarity[frame, same].topk(2).indices].tolist())


@pytest.mark.parametrize("width", [7, 64, 256, 1000])
@pytest.mark.parametrize("k", [1, 8])
def test_top_k_is_torch_topk_as_a_set(width, k):
    """The two-pass top-k (taken for long rows) picks what torch.topk picks, -inf entries included."""
    generator = torch.Generator().manual_seed(width)
    scores = torch.randn(3, 5, width, generator=generator)
    scores[0, 1] = float("-inf")  # a row of padding only
    scores[1, :, width // 2:] = float("-inf")  # padding beyond half the row
    k = min(k, width)
    values, index = top_k(scores, k)
    expected_values, expected_index = scores.topk(k)
    assert torch.equal(values.sort(-1).values, expected_values.sort(-1).values)
    finite = torch.isfinite(expected_values).all(-1)
    assert torch.equal(index.sort(-1).values[finite], expected_index.sort(-1).values[finite])
    assert torch.equal(torch.gather(scores, -1, index), values)
    # The reverse relation reads a similarity block down its columns.
    transposed = torch.randn(3, width, 5, generator=generator).transpose(1, 2)
    assert torch.equal(top_k(transposed, k)[0].sort(-1).values, transposed.topk(k)[0].sort(-1).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_top_k_with_ties_and_padding(dtype, transposed):
    """Many equal scores (repeated tokens have equal features) beside padding: the k values are
    torch.topk's, at k distinct indices, whichever of the equal entries they are."""
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(-2, 3, (2, 9, 256), generator=generator).to(dtype)
    scores[0, :, 100:] = float("-inf")
    scores[1, 3] = float("-inf")
    scores[1, 4, 7:] = float("-inf")  # fewer finite entries than k
    if transposed:
        scores = scores.transpose(1, 2).contiguous().transpose(1, 2)
    values, index = top_k(scores, 8)
    assert torch.equal(values.sort(-1).values, scores.topk(8).values.sort(-1).values)
    assert torch.equal(torch.gather(scores, -1, index), values)
    assert bool((index.sort(-1).values.diff(dim=-1) > 0).all())  # distinct


@pytest.mark.parametrize("uniform", [True, False])
def test_neighbours_of_long_modalities(uniform, metadata):
    """Sources past the two-pass top-k's threshold (140 frames), with every sample of equal size (the
    edges need no mask) or not: each destination's neighbours are its most similar sources."""
    counts = {"text": (3, 3), "audio": (140, 140 if uniform else 129)}
    batches = {t: torch.repeat_interleave(torch.arange(2), torch.tensor(c)) for t, c in counts.items()}
    graph = FlatGraph.from_dicts(metadata, {t: sum(c) for t, c in counts.items()}, {}, batches)
    x = torch.randn(graph.num_nodes, 6, generator=torch.Generator().manual_seed(0))
    x_dict = graph.unflatten(x)
    relations = [("audio", "to", "text"), ("text", "to", "audio")]
    edges = DynamicKNNEdges(8, metadata, relations=relations).edges(x, graph)
    similarity = F.normalize(x_dict["text"], dim=-1) @ F.normalize(x_dict["audio"], dim=-1).T
    for (src, _, dst), ei in edges.items():
        assert bool((ei[1, 1:] >= ei[1, :-1]).all())
        scores = similarity.T if dst == "audio" else similarity
        for i in range(scores.size(0)):
            same = (batches[src] == batches[dst][i]).nonzero().flatten()
            best = same[scores[i, same].topk(min(8, same.numel())).indices]
            assert set(ei[0, ei[1] == i].tolist()) == set(best.tolist())
