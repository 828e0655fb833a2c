"""Builders saved as JSON data and asset files: every built-in modality and strategy builds the same graphs
after the round trip; user functions travel by registered name, and an unregistered one is refused."""
import json

import pytest
import torch

from graphfuse.data import (
    CallableStrategy,
    CrossEdges,
    FeatureModality,
    GraphBuilder,
    ImageModality,
    Modality,
    NodeSet,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    VirtualNodes,
    register_function,
)
from graphfuse.data.functions import FUNCTIONS
from graphfuse.testing import assert_same_graph

SAMPLE_RATE = 16000


@register_function("tests.data.ring")
def ring(nodes: NodeSet) -> torch.Tensor:
    """Each node joined to the next, the last to the first."""
    index = torch.arange(nodes.num_nodes)
    return torch.stack([index, (index + 1) % nodes.num_nodes])


@register_function("tests.data.first-to-all")
def first_to_all(src: NodeSet, dst: NodeSet) -> torch.Tensor:
    return torch.stack([torch.zeros(dst.num_nodes, dtype=torch.long), torch.arange(dst.num_nodes)])


def waveform(seconds: float, seed: int) -> torch.Tensor:
    return 0.1 * torch.randn(int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(seed))


def features(rows: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    start = torch.arange(rows, dtype=torch.float32) * 0.1
    return {"x": torch.randn(rows, 6, generator=generator), "pos": torch.rand(rows, 2, generator=generator),
            "time": torch.stack([start, start + 0.1], dim=1)}


def round_trip(builder: GraphBuilder, folder) -> GraphBuilder:
    config = json.loads(json.dumps(builder.get_config()))  # plain JSON through and through
    builder.save_assets(folder)
    return GraphBuilder.from_config(config, folder)


@pytest.fixture
def every_kind(tokenizer):
    """Every built-in modality with settings off their defaults, and every built-in strategy."""
    from graphfuse.data import AudioModality, TextModality

    modalities = {
        "text": TextModality(tokenizer, max_length=4, window=2, self_loops=True, spans=True),
        "image": ImageModality(patch_size=2, channels=1, neighbourhood=8, self_loops=True, channels_last=True),
        "audio": AudioModality(sample_rate=SAMPLE_RATE, n_mels=8, win_length=0.02, hop_length=0.01, f_max=4000.0),
        "feat": FeatureModality(6, positions=True, timed=True, pos_shape=(2,), pos_dtype=torch.float32, edges=ring,
                                relation="ring"),
        "chain": FeatureModality(3, edges="chain", window=2),
    }
    cross = [CrossEdges("text", "audio", TemporalAlignment(window=0.05)),
             CrossEdges("text", "image", StridedBipartite(budget=3)),
             CrossEdges("image", "audio", RandomBipartite(budget=2, seed=5)),
             CrossEdges("feat", "audio", "temporal", relation="aligned"),
             CrossEdges("chain", "text", CallableStrategy(first_to_all, shape_only=True)),
             CrossEdges("feat", "image"),
             VirtualNodes(count=2, modalities=("text", "image"))]
    return GraphBuilder(modalities, cross, max_edges_per_sample=50_000, extra_keys=("id",))


def test_every_modality_and_strategy_round_trips(every_kind, tmp_path):
    samples = [
        {"text": {"text": "a red square at top", "spans": [[0.0, 0.1], [0.1, 0.2], [0.2, 0.3], [0.3, 0.4],
                                                                 [0.4, 0.5]]},
         "image": torch.rand(6, 4, 1), "audio": waveform(0.3, 1), "feat": features(5, 1),
         "chain": torch.randn(4, 3), "id": 7},
        {"image": torch.rand(4, 4, 1), "feat": features(3, 2), "audio": waveform(0.2, 2), "id": 8},
    ]
    loaded = round_trip(every_kind, tmp_path)
    assert loaded.metadata() == every_kind.metadata()
    assert [r.strategy.__class__ for r in loaded.relations] == [r.strategy.__class__ for r in every_kind.relations]
    for sample in samples:
        assert_same_graph(loaded.build(sample), every_kind.build(sample))
    assert_same_graph(loaded.collate(samples), every_kind.collate(samples))
    assert loaded.get_config() == json.loads(json.dumps(every_kind.get_config()))


def test_save_and_load_a_folder(builder, samples, tmp_path):
    builder.save(tmp_path / "builder")
    assert sorted(path.name for path in (tmp_path / "builder").iterdir()) == ["builder.json", "text.tokenizer.json"]
    assert_same_graph(GraphBuilder.load(tmp_path / "builder").collate(samples), builder.collate(samples))
    with pytest.raises(FileNotFoundError, match="No saved builder"):
        GraphBuilder.load(tmp_path)


def test_unregistered_functions_are_refused_at_save():
    with pytest.raises(ValueError, match=r"FeatureModality 'points' edge rule uses the function .*<lambda>.*not "
                                         r"registered.*register_function"):
        GraphBuilder({"points": FeatureModality(3, edges=lambda nodes: nodes.edge_index)}).get_config()
    builder = GraphBuilder({"a": FeatureModality(3), "b": FeatureModality(3)},
                           cross=[("a", "b", lambda src, dst: torch.empty(2, 0, dtype=torch.long))])
    with pytest.raises(ValueError, match=r"CrossEdges\('a', 'b', relation='to'\): CallableStrategy uses the function "
                                         r".*<lambda>.*register_function"):
        builder.get_config()


def test_functions_are_found_by_name(tmp_path):
    builder = GraphBuilder({"a": FeatureModality(3, edges="tests.data.ring"), "b": FeatureModality(3)},
                           cross=[("a", "b", CallableStrategy("tests.data.first-to-all"))])
    config = builder.get_config()
    assert config["modalities"]["a"]["config"]["edges"] == "tests.data.ring"
    assert config["cross"][0]["strategy"] == {"type": "function",
                                              "config": {"fn": "tests.data.first-to-all", "shape_only": False}}
    config["modalities"]["a"]["config"]["edges"] = "tests.data.gone"
    with pytest.raises(ValueError, match=r"'tests.data.gone', which is not a registered function's name.*"
                                         r"importing its module before loading"):
        GraphBuilder.from_config(config, tmp_path)
    config["cross"][0]["strategy"]["config"]["fn"] = "tests.data.gone"
    config["modalities"]["a"]["config"]["edges"] = "chain"
    with pytest.raises(ValueError, match=r"CallableStrategy 'fn': Unknown graph function 'tests.data.gone'.*Import "
                                         r"the module that registers it"):
        GraphBuilder.from_config(config, tmp_path)
    with pytest.raises(ValueError, match="needs its function"):
        CrossEdges("a", "b", "function")
    assert FUNCTIONS.name_of(ring) == "tests.data.ring" and FUNCTIONS.name_of(lambda: None) is None


def test_unsaveable_and_damaged_configs(builder, tmp_path):
    class Unregistered(ImageModality):
        pass

    with pytest.raises(ValueError, match="Modality 'pixels' is a Unregistered, which is not registered"):
        GraphBuilder({"pixels": Unregistered()}).get_config()

    class Opaque(Modality):
        def __init__(self, scale):
            self.factor = scale

        def featurize(self, raw):
            return NodeSet.empty()

        empty = featurize

    with pytest.raises(TypeError, match="does not keep its argument 'scale'.*override get_config"):
        Opaque(2).get_config()
    config = builder.get_config()
    config["modalities"]["text"]["config"]["tokenizer"] = "../elsewhere.json"
    with pytest.raises(ValueError, match="not a plain file name inside the folder"):
        GraphBuilder.from_config(config, tmp_path)
    config["modalities"]["text"]["config"]["tokenizer"] = "text.tokenizer.json"
    with pytest.raises(FileNotFoundError, match="tokenizer .* is missing"):
        GraphBuilder.from_config(config, tmp_path)
    with pytest.raises(ValueError, match="upgrade graphfuse"):
        GraphBuilder.from_config({**config, "version": 99}, tmp_path)
    with pytest.raises(ValueError, match="Not a graphfuse builder config"):
        GraphBuilder.from_config({"modalities": {}}, tmp_path)
