"""Settings of the wrong type given to a modality, a cross-modal strategy or the builder raise an error naming the
class and the argument, in the constructor (where a saved config is read back, the same checks run)."""
import pytest

from graphfuse.data import (
    AudioModality,
    CallableStrategy,
    CrossEdges,
    FeatureModality,
    GraphBuilder,
    ImageModality,
    RandomBipartite,
    TemporalAlignment,
    TextModality,
    VirtualNodes,
)
from graphfuse.data.edges import full_bipartite_edges


def edges(src, dst):
    return full_bipartite_edges(src.num_nodes, dst.num_nodes)


@pytest.mark.parametrize("make, match", [
    (lambda tokenizer: TextModality(tokenizer, self_loops="false"), "TextModality 'self_loops' must be True or False"),
    (lambda tokenizer: TextModality(tokenizer, spans=1), "TextModality 'spans' must be True or False"),
    (lambda _: ImageModality(self_loops=None), "ImageModality 'self_loops' must be True or False"),
    (lambda _: ImageModality(channels_last="x"), "ImageModality 'channels_last' must be True or False"),
    (lambda _: ImageModality(neighbourhood=4.0), r"ImageModality 'neighbourhood' must be one of \(4, 8\)"),
    (lambda _: AudioModality(self_loops=0), "AudioModality 'self_loops' must be True or False"),
    (lambda _: AudioModality(win_length=True), "AudioModality 'win_length' must be a number"),
    (lambda _: AudioModality(f_max="8000"), "AudioModality 'f_max' must be a number"),
    (lambda _: FeatureModality(4, timed="yes"), "FeatureModality 'timed' must be True or False"),
    (lambda _: FeatureModality(4, positions=1), "FeatureModality 'positions' must be True or False"),
    (lambda _: FeatureModality(4, positions=True, pos_shape=[-1]), r"FeatureModality 'pos_shape'\[0\] must be an "
                                                                   r"integer >= 1"),
    (lambda _: FeatureModality(4, edges="chain", relation=None), "FeatureModality 'relation' must be a non-empty"),
    (lambda _: TemporalAlignment(window=True), "TemporalAlignment 'window'"),
    (lambda _: RandomBipartite(seed=1.5), "RandomBipartite 'seed' must be an integer >= 0"),
    (lambda _: CallableStrategy(edges, shape_only="x"), "CallableStrategy 'shape_only' must be True or False"),
    (lambda _: CrossEdges("text", "image", relation=None), "CrossEdges 'relation' must be a non-empty string"),
    (lambda _: CrossEdges("text", 1), "CrossEdges 'dst' must be a non-empty string"),
    (lambda _: VirtualNodes(node_type=""), "VirtualNodes 'node_type' must be a non-empty string"),
    (lambda _: VirtualNodes(relation=1), "VirtualNodes 'relation' must be a non-empty string"),
    (lambda _: VirtualNodes(modalities={}), "VirtualNodes 'modalities' must be a non-empty list of names"),
    (lambda _: GraphBuilder({"image": ImageModality()}, max_edges_per_sample=1.5),
     r"GraphBuilder 'max_edges_per_sample' \(or None, no cap\) must be an integer >= 1"),
    (lambda _: GraphBuilder({"image": ImageModality()}, max_edges_per_sample=True), "'max_edges_per_sample'"),
    (lambda _: GraphBuilder({"image": ImageModality()}, template_cache_bytes="x"),
     "GraphBuilder 'template_cache_bytes' must be an integer >= 0"),
    (lambda _: GraphBuilder({"image": ImageModality()}, extra_keys={}), "GraphBuilder 'extra_keys' as a collection"),
])
def test_a_setting_of_the_wrong_type_is_refused(tokenizer, make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make(tokenizer)


def test_virtual_nodes_keep_their_modalities_as_a_tuple():
    assert VirtualNodes(modalities=["text", "image"]).modalities == ("text", "image")
