import pickle

import pytest
import torch
from torch_geometric.data import Batch

from graphfuse import (
    AudioModality,
    CrossEdges,
    FeatureModality,
    GraphBuilder,
    ImageModality,
    NodeSet,
    TextModality,
    Tokenizer,
    VirtualNodes,
)
from graphfuse.data import StridedBipartite, TemporalAlignment
from graphfuse.testing import assert_same_graph


def test_graph_holds_every_node_and_edge_type_even_when_a_modality_is_missing(builder, samples):
    text_and_image = builder.build(samples[1])
    assert text_and_image.metadata() == builder.metadata()
    assert text_and_image["audio"].x.shape == (0, 16)
    assert text_and_image["audio"].time.shape == (0, 2)
    assert text_and_image["text", "to", "audio"].edge_index.shape == (2, 0)
    num_tokens, num_patches = 6, 4
    assert text_and_image["text"].x.shape == (num_tokens,)
    assert text_and_image["text", "seq", "text"].edge_index.size(1) == 2 * (num_tokens - 1)
    assert text_and_image["image", "grid", "image"].edge_index.size(1) == 8  # 2x2 grid, 4-neighbourhood
    assert text_and_image["text", "to", "image"].edge_index.size(1) == num_tokens * num_patches
    assert text_and_image["image", "to", "text"].edge_index.size(1) == num_tokens * num_patches


def test_metadata_lists_intra_then_cross_relations(builder):
    node_types, edge_types = builder.metadata()
    assert node_types == ["text", "image", "audio"]
    assert edge_types == [
        ("text", "seq", "text"), ("image", "grid", "image"), ("audio", "seq", "audio"),
        ("text", "to", "image"), ("image", "to", "text"), ("text", "to", "audio"), ("audio", "to", "text"),
        ("image", "to", "audio"), ("audio", "to", "image"),
    ]


def test_cross_edges_follow_each_strategy_both_ways(modalities, samples):
    builder = GraphBuilder(modalities, cross=[
        CrossEdges("text", "audio", TemporalAlignment(), relation="aligned"),
        ("image", "audio", StridedBipartite(budget=2)),
    ])
    graph = builder.build(samples[0])
    aligned = graph["text", "aligned", "audio"].edge_index
    text_time, audio_time = graph["text"].time, graph["audio"].time
    starts_before_end = text_time[aligned[0], 0] < audio_time[aligned[1], 1]
    overlaps = starts_before_end & (audio_time[aligned[1], 0] < text_time[aligned[0], 1])
    assert aligned.size(1) > 0 and bool(overlaps.all())
    assert torch.equal(graph["audio", "aligned", "text"].edge_index.flip(0).unique(dim=1), aligned.unique(dim=1))
    num_audio, num_image = graph["audio"].num_nodes, graph["image"].num_nodes
    assert graph["image", "to", "audio"].edge_index.size(1) == 2 * num_audio
    assert graph["audio", "to", "image"].edge_index.size(1) == 2 * num_image


def test_virtual_nodes_join_every_node_of_the_sample(modalities, samples):
    builder = GraphBuilder(modalities, cross=[VirtualNodes(count=2, node_type="fusion")])
    graph = builder.build(samples[3])  # text and audio, no image
    assert torch.equal(graph["fusion"].x, torch.arange(2))
    for node_type in ("text", "audio"):
        pairs = {(i, v) for i in range(graph[node_type].num_nodes) for v in range(2)}
        into = graph[node_type, "to", "fusion"].edge_index
        out_of = graph["fusion", "to", node_type].edge_index
        assert set(map(tuple, into.t().tolist())) == pairs
        assert set(map(tuple, out_of.flip(0).t().tolist())) == pairs
    assert graph["image", "to", "fusion"].edge_index.size(1) == 0


def test_featurised_and_raw_samples_build_the_same_graph(builder, samples):
    assert_same_graph(builder.build(builder.featurize(samples[0])), builder.build(samples[0]))


def test_none_counts_as_a_missing_modality(builder, samples):
    with_none = builder.build({**samples[1], "audio": None})
    assert with_none["audio"].num_nodes == 0
    assert torch.equal(with_none["image"].x, builder.build(samples[1])["image"].x)


def test_built_graphs_do_not_share_the_cached_templates(builder, samples):
    first = builder.build(samples[1])
    first["text", "to", "image"].edge_index.zero_()
    second = builder.build(samples[1])
    assert int(second["text", "to", "image"].edge_index[1].max()) == second["image"].num_nodes - 1


def test_modalities_can_be_named_by_their_registered_name():
    builder = GraphBuilder({"image": "image"})
    assert isinstance(builder.modalities["image"], ImageModality)
    assert builder.build({"image": torch.rand(3, 8, 8)})["image"].x.shape == (4, 48)


def test_errors_name_the_builder_key_of_a_modality():
    builder = GraphBuilder({"clip": FeatureModality(dim=4)})
    with pytest.raises(ValueError, match=r"Modality 'clip' received features of shape \(3, 5\)"):
        builder.build({"clip": torch.rand(3, 5)})


@pytest.mark.parametrize("sample,error,match", [
    ({"txt": "a cat"}, ValueError, r"unknown modality 'txt'; this GraphBuilder knows \['text', 'image', 'audio'\]"),
    ({}, ValueError, r"none of the modalities \['text', 'image', 'audio'\]"),
    ({"text": None}, ValueError, "every sample needs at least one"),
    ("a cat", TypeError, "A sample must be a mapping from modality name to input"),
    ({"text": ""}, ValueError, "Modality 'text' received empty text"),
])
def test_bad_samples_raise_clear_errors(builder, sample, error, match):
    with pytest.raises(error, match=match):
        builder.build(sample)


def test_unknown_keys_are_refused_by_default_with_the_option_named(builder):
    with pytest.raises(ValueError, match=r"unknown modality 'id'.*GraphBuilder\(\.\.\., extra_keys='ignore'\) or "
                                         r"extra_keys=\('id', \.\.\.\)"):
        builder.featurize({"text": "a cat", "id": 7})


@pytest.mark.parametrize("extra_keys", ["ignore", ("id", "meta"), ["meta", "id"], {"id", "meta"}])
def test_extra_keys_are_dropped_by_rule_on_every_path(modalities, samples, extra_keys):
    builder = GraphBuilder(modalities, cross="full", extra_keys=extra_keys)
    tagged = [{**sample, "id": i, "meta": {"source": "x"}} for i, sample in enumerate(samples)]
    reference = GraphBuilder(modalities, cross="full")
    assert_same_graph(builder.build(tagged[0]), reference.build(samples[0]))
    assert_same_graph(builder.collate(tagged), reference.collate(samples))
    featurized = builder.featurize(tagged[1])
    assert featurized.keys() == reference.featurize(samples[1]).keys()
    assert_same_graph(builder.collate([{**featurized, "id": 1}]), reference.collate([samples[1]]))  # node sets + id
    assert pickle.loads(pickle.dumps(builder)).extra_keys == builder.extra_keys


def test_named_extra_keys_refuse_any_other_key(modalities):
    builder = GraphBuilder(modalities, extra_keys=("id",))
    assert builder.featurize({"text": "a cat", "id": 3}).keys() == {"text"}
    with pytest.raises(ValueError, match=r"unknown modality 'meta'.*\(it ignores \['id'\]\)"):
        builder.featurize({"text": "a cat", "id": 3, "meta": None})
    assert repr(builder).endswith("extra_keys=('id',))")


@pytest.mark.parametrize("extra_keys, error, match", [
    ("drop", ValueError, r"'extra_keys' must be 'error', 'ignore' or a collection of key names"),
    (("id", 3), TypeError, r"'extra_keys' as a collection must be a list, tuple or set of key names \(str\)"),
    (("id", "text"), ValueError, r"'extra_keys' names \['text'\], which are modalities of this builder"),
])
def test_bad_extra_keys_are_refused(modalities, extra_keys, error, match):
    with pytest.raises(error, match=match):
        GraphBuilder(modalities, extra_keys=extra_keys)


def test_edge_cap_names_the_relation_and_a_sparser_strategy(tokenizer):
    builder = GraphBuilder({"text": TextModality(tokenizer), "image": ImageModality(patch_size=1, channels=1)},
                           cross="full", max_edges_per_sample=1000)
    sample = {"text": "a red square at the top left", "image": torch.rand(10, 10)}  # 7 tokens, 100 patches
    with pytest.raises(ValueError, match=r"would have 1072 edges.*relation \('text', 'to', 'image'\) has 700 of them"
                                         r".*StridedBipartite"):
        builder.build(sample)
    sparse = GraphBuilder(builder.modalities, cross=[("text", "image", StridedBipartite(budget=1))],
                          max_edges_per_sample=1000)
    assert sparse.build(sample)["text", "to", "image"].edge_index.size(1) == 100
    uncapped = GraphBuilder(builder.modalities, cross="full", max_edges_per_sample=None)
    assert uncapped.build(sample)["image", "to", "text"].edge_index.size(1) == 700


@pytest.fixture(scope="module")
def ten_minutes():
    """A 10-minute recording, 60,000 frames at the 10 ms hop, beside 9 words and a 7 x 7 patch grid."""
    generator = torch.Generator().manual_seed(0)
    spans = [[i * 66.0, i * 66.0 + 66.0] for i in range(9)]
    return {"text": {"text": "a red square at the top left of it", "spans": spans},
            "image": torch.rand(28, 28, generator=generator),
            "audio": torch.randn(round(600.015 * 16000), generator=generator) * 0.1}


def test_a_long_recording_with_full_cross_edges_is_refused_at_the_default_cap(tokenizer, ten_minutes):
    modalities = {"text": TextModality(tokenizer, spans=True), "image": ImageModality(patch_size=4, channels=1),
                  "audio": AudioModality()}
    nodes = GraphBuilder(modalities).featurize(ten_minutes)
    assert nodes["audio"].num_nodes == 60_000
    # Every pair complete: the words <-> frames relations (9 x 60,000 each way) take the sample over the cap.
    with pytest.raises(ValueError, match=r"would have 1\d{6} edges, over max_edges_per_sample=1000000: relation "
                                         r"\('audio', 'to', 'text'\) has 540000 of them.*StridedBipartite\(budget=8\)"):
        GraphBuilder(modalities, cross="full").build(nodes)
    # Patches -> frames alone are over it (49 x 60,000), refused before they are made.
    with pytest.raises(ValueError, match=r"would have 2940000 edges, over max_edges_per_sample=1000000: relation "
                                         r"\('image', 'to', 'audio'\)"):
        GraphBuilder(modalities, cross=[CrossEdges("image", "audio")]).collate([nodes])
    sparse = GraphBuilder(modalities, cross=[CrossEdges("text", "audio", TemporalAlignment(window=0.05)),
                                             CrossEdges("text", "image"), CrossEdges("image", "audio",
                                                                                     StridedBipartite(budget=8))])
    graph = sparse.collate([nodes])
    assert graph.num_edges < 800_000 and graph["image", "to", "audio"].edge_index.size(1) == 8 * 60_000


def test_edge_cap_counts_the_whole_sample(tokenizer):
    builder = GraphBuilder({"text": TextModality(tokenizer, window=3)}, max_edges_per_sample=20)
    with pytest.raises(ValueError, match=r"would have 24 edges.*\('text', 'seq', 'text'\).*lower the modality's "):
        builder.build({"text": "a red square at the top"})


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(modalities={}), ValueError, "needs at least one modality"),
    (dict(modalities={"text": 3}), TypeError, "modality 'text' must be a Modality or a registered modality name"),
    (dict(modalities={"video": "video-frames"}), ValueError, "Unknown modality 'video-frames'"),
    (dict(cross="dense"), ValueError, "'cross' as a string must be 'full'"),
    (dict(cross=[("text", "video")]), ValueError, "names node type 'video', which is not among"),
    (dict(cross=[("text", "image"), ("image", "text")]), ValueError, r"\('image', 'to', 'text'\) is defined twice"),
    (dict(cross=[3]), TypeError, "'cross' entries must be CrossEdges"),
    (dict(cross=[VirtualNodes(node_type="text")]), ValueError, "node_type 'text' is already a node type"),
    (dict(max_edges_per_sample=0), ValueError, r"'max_edges_per_sample' \(or None, no cap\) must be an integer >= 1"),
])
def test_bad_configurations_raise_clear_errors(modalities, kwargs, error, match):
    kwargs = {"modalities": modalities, **kwargs}
    with pytest.raises(error, match=match):
        GraphBuilder(**kwargs)


@pytest.mark.parametrize("cross, match", [
    (CrossEdges("text", "image", "full"), r"received a single CrossEdges; pass a list of cross-edge specs: "
                                          r"cross=\[CrossEdges\(\.\.\.\)\]"),
    (VirtualNodes(), r"received a single VirtualNodes; pass a list of cross-edge specs: cross=\[VirtualNodes"),
    (("text", "image", "full"), r"received the tuple \('text', 'image', 'full'\), a single cross-edge spec; pass a "
                                r"list of cross-edge specs: cross=\[\('text', 'image', 'full'\)\]"),
    (None, r"'cross' must be 'full' or a list of cross-edge specs .*got NoneType None"),
], ids=["CrossEdges", "VirtualNodes", "tuple", "None"])
def test_a_cross_edge_spec_not_in_a_list_is_refused_with_the_list_to_pass(modalities, cross, match):
    with pytest.raises(TypeError, match=match):
        GraphBuilder(modalities, cross=cross)


@pytest.mark.parametrize("cross", [
    [CrossEdges("text", "image", "full")], (CrossEdges("text", "image", "full"),), [("text", "image", "full")],
    [("text", "image")],
])
def test_a_list_or_tuple_of_cross_edge_specs_is_accepted(modalities, cross):
    builder = GraphBuilder(modalities, cross=cross)
    assert [spec.src for spec in builder.cross] == ["text"] and [spec.dst for spec in builder.cross] == ["image"]


def test_temporal_alignment_needs_time_spans_on_both_sides(tokenizer, modalities):
    with pytest.raises(ValueError, match=r"needs 'time' on every node, but modality 'text' has none.*spans=True"):
        GraphBuilder({**modalities, "text": TextModality(tokenizer)}, cross=[("text", "audio", "temporal")])


def test_builder_pickles_without_its_cache(builder, samples):
    expected = builder.build(samples[0])
    restored = pickle.loads(pickle.dumps(builder))
    assert len(restored._templates) == 0
    assert_same_graph(restored.build(samples[0]), expected)


def test_featurize_many_equals_featurize_and_groups_by_modality(builder, samples):
    calls = []
    text = builder.modalities["text"]
    featurize_many = text.featurize_many
    text.featurize_many = lambda raws: calls.append(len(raws)) or featurize_many(raws)
    many = builder.featurize_many(samples)
    assert calls == [4]  # the four samples with text, in one call
    for nodes, sample in zip(many, samples, strict=True):
        alone = builder.featurize(sample)
        assert list(nodes) == list(alone)
        assert all(torch.equal(nodes[key].x, alone[key].x) for key in nodes)
    with pytest.raises(ValueError, match="Sample has unknown modality 'video'"):
        builder.featurize_many([samples[0], {"video": 1}])


def counting_batches(builder):
    """{modality: number of raw inputs of each featurize_many call} of ``builder``, counted from now on."""
    calls = {}
    for key, modality in builder.modalities.items():
        calls[key] = []
        featurize_many = modality.featurize_many
        modality.featurize_many = lambda raws, key=key, featurize_many=featurize_many: (
            calls[key].append(len(raws)) or featurize_many(raws))
    return calls


def test_collate_of_raw_samples_featurises_each_modality_once_and_equals_pyg(builder, samples):
    """Raw, given and missing modalities mixed: one featurize_many call per modality, and the batch of
    Batch.from_data_list over samples featurised one at a time, within float32 rounding."""
    given = builder.featurize(samples[2])  # validated node sets pass through
    unvalidated = {"text": TextModality(builder.modalities["text"].tokenizer, spans=True)("a red square")}
    mixed = [samples[0], given, {**samples[3], **unvalidated}, samples[1], {"image": samples[4]["image"]}]
    expected = Batch.from_data_list([builder.build(sample) for sample in mixed])
    calls = counting_batches(builder)
    batch = builder.collate(mixed)
    assert calls == {"text": [2], "image": [3], "audio": [2]}
    assert_same_graph(batch, expected, rtol=1e-5, atol=1e-5)


def test_the_builder_validates_what_a_modality_has_not(builder, samples, monkeypatch):
    validated = []
    validate = NodeSet.validate
    monkeypatch.setattr(NodeSet, "validate", lambda nodes, key: validated.append(key) or validate(nodes, key))
    builder.featurize_many(samples)
    assert validated == []  # the built-in modalities check what they make
    features = GraphBuilder({"features": FeatureModality(dim=2), "image": ImageModality()})
    features.featurize_many([{"features": torch.ones(3, 2)}, {"image": torch.rand(3, 8, 8)}])
    assert validated == ["features"]  # FeatureModality validates its own node set; the builder does not again

    class Unchecked(FeatureModality):
        def featurize(self, raw):
            return NodeSet(x=raw, edge_index=torch.empty(2, 0, dtype=torch.long))

    with pytest.raises(ValueError, match=r"Modality 'mine' received node features with 1 NaN/Inf value\(s\)"):
        GraphBuilder({"mine": Unchecked(dim=2)}).featurize_many([{"mine": torch.ones(2, 2)},
                                                                 {"mine": torch.tensor([[0.0, float("nan")]])}])


@pytest.mark.parametrize("made,match", [
    (dict(x=torch.ones(2, 3)), r"'x' as dtype torch.float32, shape \[N, 3\], unlike its empty\(\) node set "
                               r"\(dtype torch.float32, shape \[N, 2\]\)"),
    (dict(x=torch.ones(2, 2, dtype=torch.float64)), r"'x' as dtype torch.float64"),
    (dict(x=torch.ones(2, 2), pos=torch.arange(2)), r"'pos' as dtype torch.int64, shape \[N, \], unlike its "
                                                    r"empty\(\) node set \(absent\)"),
])
def test_a_node_set_unlike_the_modalitys_empty_one_is_refused(made, match):
    class Inconsistent(FeatureModality):
        def featurize(self, raw):
            return NodeSet(edge_index=torch.empty(2, 0, dtype=torch.long), **made)

    builder = GraphBuilder({"mine": Inconsistent(dim=2)})
    with pytest.raises(ValueError, match=rf"Modality 'mine' produced {match}.*featurize\(\) and empty\(\) must agree"):
        builder.featurize_many([{"mine": torch.ones(2, 2)}])


@pytest.mark.parametrize("modality,raws", [
    (TextModality(Tokenizer(["a", "cat"]), spans=True),
     ["a cat", {"text": "a dog", "spans": [[0.0, 0.5], [0.5, 1.0]]}, ["cat"]]),
    (TextModality(Tokenizer(["a", "cat"]), max_length=1, window=2, self_loops=True), ["a cat", "cat"]),
    (ImageModality(patch_size=4, channels=1, neighbourhood=8),
     [torch.rand(8, 8), torch.randint(0, 256, (1, 6, 10), dtype=torch.uint8)]),
    (AudioModality(n_mels=8, f_max=4000.0), [torch.rand(100), (torch.rand(2, 3000), 8000), torch.rand(5000).double()]),
])
def test_the_built_in_modalities_make_node_sets_like_their_empty_ones(modality, raws):
    """What lets the builder leave their node sets uncompared (Modality.conforms_to_empty)."""
    assert modality.conforms_to_empty()
    empty = modality.empty()
    for nodes in modality.featurize_many(raws):
        assert nodes.validated
        for attribute in ("x", "pos", "time"):
            value, expected = getattr(nodes, attribute), getattr(empty, attribute)
            assert (value is None) == (expected is None), attribute
            if value is not None:
                assert (value.dtype, value.shape[1:]) == (expected.dtype, expected.shape[1:]), attribute


def test_a_subclass_of_a_built_in_modality_is_compared_with_its_empty_node_set():
    class FewerBands(AudioModality):
        def empty(self):
            return NodeSet.empty(feature_shape=(self.n_mels - 1,), pos_shape=(), timed=True)

    assert not FewerBands().conforms_to_empty()
    with pytest.raises(ValueError, match=r"Modality 'audio' produced 'x' as dtype torch.float32, shape \[N, 8\], "
                                         r"unlike its empty\(\) node set \(dtype torch.float32, shape \[N, 7\]\)"):
        GraphBuilder({"audio": FewerBands(n_mels=8)}).featurize_many([{"audio": torch.rand(800)}])
