"""The throughput benchmark's comparison methods on a tiny batch with missing modalities.

Every method is checked the same way: shapes and finite gradients, no leakage between the samples
of a batch, each sample's output equal to the output for that sample alone (for the transformer:
unpadded), and zeros for a sample without nodes (early fusion: its learned vectors of absent
modalities through its MLP).
"""
import dataclasses
from types import SimpleNamespace

import pytest
import torch

from graphfuse.bench.build import make_builder
from graphfuse.bench.comparisons import (
    COMPARISONS,
    DenseTransformerFusion,
    EarlyFusionMLP,
    ResidualLayers,
    mean_per_sample,
)
from graphfuse.datasets import synthetic_samples
from graphfuse.deprecation import GraphfuseDeprecationWarning
from graphfuse.testing import requires_dgl

HIDDEN, LAYERS, HEADS = 8, 2, 2
PYG_AND_DENSE = [name for name, comparison in COMPARISONS.items() if not comparison.requires_dgl]
DGL_METHODS = [name for name, comparison in COMPARISONS.items() if comparison.requires_dgl]


@pytest.fixture(scope="module", params=["one sample lacks a modality", "no audio in the batch"])
def case(request):
    """Four samples of two sizes (3 or 5 tokens, 2x2 or 3x3 patches, 3 or 4 frames); sample 1 has no
    audio and sample 3 no image, or no sample has audio."""
    builder = make_builder(patch_size=2, channels=1, cross="full")
    samples = (synthetic_samples(2, tokens=3, grid=2, patch_size=2, channels=1, frames=3, seed=0)
               + synthetic_samples(2, tokens=5, grid=3, patch_size=2, channels=1, frames=4, seed=1))
    del samples[3]["image"]
    for index, sample in enumerate(samples):
        if index == 1 or request.param == "no audio in the batch":
            del sample["audio"]
    node_sets = [builder.featurize(sample) for sample in samples]
    return SimpleNamespace(builder=builder, node_sets=node_sets, batch=builder.collate(node_sets),
                           complete=request.param == "one sample lacks a modality")


def features(batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {node_type: torch.randn(batch[node_type].num_nodes, HIDDEN, generator=generator)
            for node_type in batch.node_types}


def build_method(name, case):
    torch.manual_seed(0)
    comparison = COMPARISONS[name]
    return comparison.build(case.builder.metadata(), HIDDEN, LAYERS, HEADS), comparison.prepare(case.batch)


def check_shape_and_gradients(name, case):
    fusion, graph = build_method(name, case)
    h = {node_type: x.requires_grad_() for node_type, x in features(case.batch).items()}
    out = fusion(h, graph)
    assert out.shape == (case.batch.num_graphs, HIDDEN)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in h.values())
    gradients = {key: p.grad for key, p in fusion.named_parameters()}
    if case.complete:  # every relation has edges: every parameter is used
        assert [key for key, grad in gradients.items() if grad is None] == []
    used = {key: grad for key, grad in gradients.items() if grad is not None}
    assert used and all(torch.isfinite(grad).all() for grad in used.values())


def check_no_leakage(name, case):
    fusion, graph = build_method(name, case)
    h = features(case.batch)
    with torch.no_grad():
        reference = fusion(h, graph)
        for perturbed in range(case.batch.num_graphs):
            h_perturbed = {node_type: x + 1.0 * (case.batch[node_type].batch == perturbed).unsqueeze(-1)
                           for node_type, x in h.items()}
            out = fusion(h_perturbed, graph)
            others = torch.arange(case.batch.num_graphs) != perturbed
            torch.testing.assert_close(out[others], reference[others])
            assert not torch.allclose(out[perturbed], reference[perturbed])


def check_matches_each_sample_alone(name, case):
    fusion, graph = build_method(name, case)
    h = features(case.batch)
    with torch.no_grad():
        out = fusion(h, graph)
        for index, nodes in enumerate(case.node_sets):
            alone = COMPARISONS[name].prepare(case.builder.collate([nodes]))
            h_alone = {node_type: x[case.batch[node_type].batch == index] for node_type, x in h.items()}
            torch.testing.assert_close(out[index], fusion(h_alone, alone)[0], rtol=1e-4, atol=1e-5)


def check_sample_without_nodes_reads_zeros(name, case):
    fusion, graph = build_method(name, case)
    h = features(case.batch)
    with torch.no_grad():
        reference = fusion(h, graph)
    with_empty_sample = dataclasses.replace(graph, num_samples=graph.num_samples + 1)
    out = fusion(h, with_empty_sample)
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters() if p.grad is not None)
    fusion.eval()  # inference too: the transformer's fast path gives NaN where a sample masks every key
    with torch.no_grad():
        inference = fusion(h, with_empty_sample)
    for result in (out.detach(), inference):
        torch.testing.assert_close(result[:-1], reference, rtol=1e-4, atol=1e-5)
        # The readout of a sample without nodes is zeros; early fusion puts its learned vectors of absent
        # modalities through its MLP.
        if name == "early-fusion-mlp":
            torch.testing.assert_close(result[-1], fusion.fusion.mlp(fusion.fusion.absent.flatten()))
        else:
            assert torch.equal(result[-1], torch.zeros(HIDDEN))


CHECKS = [check_shape_and_gradients, check_no_leakage, check_matches_each_sample_alone,
          check_sample_without_nodes_reads_zeros]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", PYG_AND_DENSE)
def test_method(name, check, case):
    check(name, case)


@requires_dgl
@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", DGL_METHODS)
def test_dgl_method(name, check, case):
    check(name, case)


def test_registry():
    assert list(COMPARISONS) == ["pyg-heteroconv-gcn", "pyg-heteroconv-gat", "pyg-hgt", "dgl-graphconv", "dgl-gat",
                               "dense-transformer", "early-fusion-mlp"]
    assert DGL_METHODS == ["dgl-graphconv", "dgl-gat"]


def test_mean_per_sample_matches_a_loop(case):
    batch = case.batch
    h = features(batch)
    out = mean_per_sample(h, batch.batch_dict, batch.num_graphs + 1)  # the last sample has no nodes
    for sample in range(batch.num_graphs):
        rows = torch.cat([h[node_type][batch[node_type].batch == sample] for node_type in h])
        torch.testing.assert_close(out[sample], rows.mean(0))
    assert torch.equal(out[-1], torch.zeros(HIDDEN))


def test_mean_per_sample_errors(case):
    with pytest.raises(ValueError, match="empty 'h_dict'"):
        mean_per_sample({}, case.batch.batch_dict, 2)
    with pytest.raises(ValueError, match=r"node types \['video'\] without a sample index"):
        mean_per_sample({"video": torch.zeros(1, HIDDEN)}, case.batch.batch_dict, 2)
    with pytest.raises(ValueError, match=r"different lengths .*'text': \(0, 16\)"):
        mean_per_sample({"text": torch.zeros(0, HIDDEN)}, case.batch.batch_dict, 2)


class Double(torch.nn.Module):
    """A stand-in layer: messages 2 h to text, ``None`` to image, nothing to audio."""

    def forward(self, h_dict, edges):
        return {"text": 2 * h_dict["text"], "image": None}


def test_residual_layers_update_only_types_with_messages(case):
    graph = COMPARISONS["pyg-heteroconv-gcn"].prepare(case.batch)
    h = features(case.batch)
    expected = {**h, "text": h["text"] + torch.relu(2 * h["text"])}
    expected["text"] = expected["text"] + torch.relu(2 * expected["text"])
    torch.testing.assert_close(ResidualLayers([Double(), Double()])(h, graph),
                               mean_per_sample(expected, case.batch.batch_dict, case.batch.num_graphs))


def test_early_fusion_matches_a_loop(case):
    fusion, graph = build_method("early-fusion-mlp", case)

    def loop(h):
        rows = []
        for sample in range(case.batch.num_graphs):
            means = []
            for index, node_type in enumerate(case.builder.metadata()[0]):
                x = h[node_type][case.batch[node_type].batch == sample] if node_type in h else torch.zeros(0, HIDDEN)
                means.append(x.mean(0) if len(x) else fusion.fusion.absent[index])
            rows.append(fusion.fusion.mlp(torch.cat(means)))
        return torch.stack(rows)

    h = features(case.batch)
    torch.testing.assert_close(fusion(h, graph), loop(h))
    # A node type left out of h_dict is a modality that every sample lacks.
    without_audio = {node_type: x for node_type, x in h.items() if node_type != "audio"}
    torch.testing.assert_close(fusion(without_audio, graph), loop(without_audio))


@pytest.mark.parametrize("name", ["pyg-heteroconv-gat", "pyg-hgt", "dense-transformer"])
def test_heads_must_divide_hidden(name, case):
    with pytest.raises(ValueError, match=f"'{name}' splits hidden=10 channels over heads=4"):
        COMPARISONS[name].build(case.builder.metadata(), 10, LAYERS, 4)


@pytest.mark.parametrize("module", [DenseTransformerFusion, EarlyFusionMLP])
def test_dense_methods_reject_unknown_node_types(module, case):
    fusion = module(case.builder.metadata(), HIDDEN, LAYERS, HEADS)
    graph = COMPARISONS["early-fusion-mlp"].prepare(case.batch)
    with pytest.raises(ValueError, match=rf"'{module.__name__}' received node types \['video'\]"):
        fusion({**features(case.batch), "video": torch.zeros(1, HIDDEN)}, graph)
    with pytest.raises(ValueError, match="empty 'h_dict'"):
        fusion({}, graph)


def test_the_old_module_warns_and_resolves_to_the_new_names():
    from graphfuse.bench import baselines, comparisons

    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.bench.baselines.BASELINES moved to "
                                                         "graphfuse.bench.comparisons.COMPARISONS"):
        assert baselines.BASELINES is comparisons.COMPARISONS
    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.bench.baselines.EarlyFusionMLP moved"):
        assert baselines.EarlyFusionMLP is comparisons.EarlyFusionMLP
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        baselines.Nothing  # noqa: B018


def test_the_dense_methods_reuse_the_baseline_layers(case):
    transformer = DenseTransformerFusion(case.builder.metadata(), HIDDEN, LAYERS, HEADS)
    assert repr(transformer.fusion) == ("TransformerFusion(8, node_types=['text', 'image', 'audio'], num_layers=2, "
                                        "heads=2, norm_first=False, activation='relu')")
    early = EarlyFusionMLP(case.builder.metadata(), HIDDEN, LAYERS, HEADS)
    assert [m.out_features for m in early.fusion.mlp if isinstance(m, torch.nn.Linear)] == [4 * HIDDEN, HIDDEN]
