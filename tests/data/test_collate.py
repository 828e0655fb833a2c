import pytest
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch

from graphfuse import CrossEdges, FeatureModality, GraphBuilder, NodeSet, VirtualNodes
from graphfuse.data import RandomBipartite, StridedBipartite, TemporalAlignment
from graphfuse.data import collate as collate_module
from graphfuse.testing import assert_same_graph


def assert_same_batch(batch, reference):
    assert_same_graph(batch, reference)
    assert batch.num_graphs == reference.num_graphs
    for name in ("_slice_dict", "_inc_dict"):
        ours, theirs = getattr(batch, name), getattr(reference, name)
        assert ours.keys() == theirs.keys()
        for key in theirs:
            for attribute, value in theirs[key].items():
                assert torch.equal(ours[key][attribute], value), (name, key, attribute)


def fixed_shape(samples):
    """Two samples with the same shape in every modality: 3 tokens, 3x4 patches, 48 audio frames."""
    return [samples[0], {**samples[4], "text": "at the top"}]


def reference_batch(builder, samples):
    return Batch.from_data_list([builder.build(sample) for sample in samples])


def test_collate_equals_from_data_list_with_missing_modalities(builder, samples):
    assert_same_batch(builder.collate(samples), reference_batch(builder, samples))


def test_collate_equals_from_data_list_for_every_strategy(modalities, samples):
    builder = GraphBuilder(modalities, cross=[
        CrossEdges("text", "audio", TemporalAlignment(window=0.05)),
        CrossEdges("text", "image", RandomBipartite(budget=3)),
        CrossEdges("image", "audio", StridedBipartite(budget=2)),
        CrossEdges("text", "image", "full", relation="sees"),
        VirtualNodes(count=2),
    ])
    assert_same_batch(builder.collate(samples), reference_batch(builder, samples))


def test_uniform_batch_takes_the_shared_template_path_and_still_equals(builder, samples):
    uniform = fixed_shape(samples)
    batch = builder.collate(uniform)
    assert_same_batch(batch, reference_batch(builder, uniform))
    assert torch.equal(batch["image"].batch, torch.arange(2).repeat_interleave(12))


def test_batch_splits_back_into_its_samples(builder, samples):
    for graph, sample in zip(builder.collate(samples).to_data_list(), samples, strict=True):
        assert_same_graph(graph, builder.build(sample))


def test_node_type_absent_from_the_whole_batch(builder, samples):
    text_only = [{"text": "a red square"}, {"text": "the cat"}]
    batch = builder.collate(text_only)
    assert batch["image"].x.shape == (0, 16) and batch["image"].batch.numel() == 0
    assert torch.equal(batch["image"].ptr, torch.zeros(3, dtype=torch.long))
    assert_same_batch(batch, reference_batch(builder, text_only))


def test_featurised_samples_batch_like_raw_ones(builder, samples):
    featurized = [builder.featurize(sample) for sample in samples]
    assert_same_batch(builder.collate(featurized), builder.collate(samples))


def test_single_node_samples(tokenizer):
    builder = GraphBuilder({"feat": FeatureModality(dim=3, edges="chain"), "other": FeatureModality(dim=2)},
                           cross="full")
    samples = [{"feat": torch.ones(1, 3), "other": torch.ones(1, 2)}, {"feat": torch.zeros(1, 3)}]
    assert_same_batch(builder.collate(samples), reference_batch(builder, samples))


def test_dataloader_with_worker_processes(builder, samples):
    loader = DataLoader(samples, batch_size=3, collate_fn=builder.collate, num_workers=2)
    batches = list(loader)
    assert [b.num_graphs for b in batches] == [3, 2]
    assert_same_batch(batches[0], builder.collate(samples[:3]))
    assert_same_batch(batches[1], builder.collate(samples[3:]))


def test_no_information_crosses_samples(builder, samples):
    batch = builder.collate(samples)
    for edge_type in batch.edge_types:
        src, _, dst = edge_type
        edge_index = batch[edge_type].edge_index
        assert torch.equal(batch[src].batch[edge_index[0]], batch[dst].batch[edge_index[1]]), edge_type


def test_bad_batches_raise_clear_errors(builder, samples):
    with pytest.raises(ValueError, match="empty list of samples"):
        builder.collate([])
    with pytest.raises(TypeError, match="collate expects a list of samples, got dict"):
        builder.collate(samples[0])


def test_hand_made_node_sets_that_do_not_fit_the_builder():
    builder = GraphBuilder({"feat": FeatureModality(dim=3)})
    wrong_dim = NodeSet(x=torch.ones(2, 4), edge_index=torch.empty(2, 0, dtype=torch.long))
    right = NodeSet(x=torch.ones(2, 3), edge_index=torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Cannot batch 'x' of node type 'feat': one sample has dtype torch.float32 "
                                         r"and shape \(2, 4\), the builder expects .* trailing shape \(3,\)"):
        builder.collate([{"feat": right}, {"feat": wrong_dim}])
    wrong_dtype = NodeSet(x=torch.ones(2, 3, dtype=torch.float64), edge_index=torch.empty(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="one sample has dtype torch.float64"):
        builder.collate([{"feat": right}, {"feat": wrong_dtype}])
    with_time = NodeSet(x=torch.ones(2, 3), edge_index=torch.empty(2, 0, dtype=torch.long), time=torch.zeros(2, 2))
    with pytest.raises(ValueError, match="carries 'time', which this builder's 'feat' modality does not produce"):
        builder.collate([{"feat": with_time}])


def test_edge_cap_applies_to_batches(modalities, samples):
    builder = GraphBuilder({"text": modalities["text"], "image": modalities["image"]}, cross="full",
                           max_edges_per_sample=40)
    assert builder.collate([{"text": "a red square"}]).num_graphs == 1
    text_and_image = {"text": samples[1]["text"], "image": samples[1]["image"]}  # 6 tokens, 4 patches
    with pytest.raises(ValueError, match=r"would have 42 edges, over max_edges_per_sample=40: relation "
                                         r"\('text', 'to', 'image'\) has 24"):
        builder.collate([{"text": "a red square"}, text_and_image])


def test_repeated_fixed_shape_batches_reuse_a_skeleton_but_get_their_own_tensors(builder, samples):
    uniform = fixed_shape(samples)
    first = builder.collate(uniform)
    assert len(builder.collater) == 1
    for store in first.stores:
        for value in store.values():
            value.zero_()  # a user writing into one batch must not change the next
    second = builder.collate(uniform)
    assert len(builder.collater) == 1
    assert_same_batch(second, reference_batch(builder, uniform))


def test_batches_of_varying_shapes_are_not_cached(builder, samples):
    builder.collate(samples)
    assert len(builder.collater) == 0


def test_skeleton_cache_is_bounded(tokenizer):
    builder = GraphBuilder({"feat": FeatureModality(dim=2, edges="chain")})
    for length in range(1, collate_module.SKELETON_CACHE_SIZE + 5):
        builder.collate([{"feat": torch.ones(length, 2)}])
    assert len(builder.collater) == collate_module.SKELETON_CACHE_SIZE


def test_a_cached_skeleton_still_obeys_a_lowered_edge_cap(builder, samples):
    uniform = fixed_shape(samples)
    builder.collate(uniform)
    builder.max_edges_per_sample = 100
    with pytest.raises(ValueError, match="over max_edges_per_sample=100"):
        builder.collate(uniform)


def test_installed_torch_geometric_keeps_the_batch_bookkeeping_collation_writes():
    assert collate_module.bookkeeping_supported()


def test_without_the_private_bookkeeping_collation_takes_the_public_path(builder, samples, monkeypatch):
    monkeypatch.setattr(collate_module, "_bookkeeping_ok", None)
    monkeypatch.setattr(collate_module, "_check_bookkeeping", lambda: False)
    from_data_list = Batch.from_data_list
    calls = []
    monkeypatch.setattr(Batch, "from_data_list", lambda graphs: calls.append(len(graphs)) or from_data_list(graphs))
    batch = builder.collate(samples)
    assert calls == [len(samples)]
    monkeypatch.setattr(Batch, "from_data_list", from_data_list)
    assert_same_batch(batch, reference_batch(builder, samples))


def test_pyg_private_batch_fields_are_written_by_the_collater_only():
    import pathlib

    import graphfuse

    writers = sorted(path.relative_to(pathlib.Path(graphfuse.__file__).parent).as_posix()
                     for path in pathlib.Path(graphfuse.__file__).parent.rglob("*.py")
                     if any(field in path.read_text() for field in ("_slice_dict", "_inc_dict", "_num_graphs")))
    assert writers == ["data/collate.py"]
