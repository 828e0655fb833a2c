import uuid

import pytest
import torch

from graphfuse.data import AudioModality, FeatureModality, ImageModality, TextModality, Tokenizer
from graphfuse.data.modalities import base as base_module
from graphfuse.data.modalities.base import Modality, create_modality, list_modalities, register_modality
from graphfuse.data.nodes import NodeSet


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Registrations made by a test stay in a copy of the registry; names are unique besides (uuid)."""
    monkeypatch.setattr(base_module, "MODALITIES", base_module.MODALITIES.copy())


def unique(prefix="test"):
    return f"{prefix}-{uuid.uuid4().hex}"


class Constant(Modality):
    """A modality with one node per raw number."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def featurize(self, raw):
        x = self.scale * torch.as_tensor(raw, dtype=torch.float32).reshape(-1, 1)
        return NodeSet(x=x, edge_index=torch.empty(2, 0, dtype=torch.long))

    def empty(self):
        return NodeSet.empty(feature_shape=(1,))


def nodes(num_nodes=3, **kwargs):
    return NodeSet(x=torch.zeros(num_nodes, 2), edge_index=torch.tensor([[0, 1], [1, 0]]), **kwargs)


# --- NodeSet ---------------------------------------------------------------------------------------

def test_empty_defaults():
    empty = NodeSet.empty()
    assert empty.x.shape == (0,) and empty.x.dtype == torch.float32
    assert empty.edge_index.shape == (2, 0) and empty.edge_index.dtype == torch.long
    assert empty.pos is None and empty.time is None
    assert (empty.num_nodes, empty.num_edges) == (0, 0)
    assert empty.attributes().keys() == {"x"}
    assert empty.validate("m") is empty


def test_empty_with_shapes():
    empty = NodeSet.empty(feature_shape=(4, 3), dtype=torch.float64, pos_shape=(2,), pos_dtype=torch.float32,
                          timed=True)
    assert empty.x.shape == (0, 4, 3) and empty.x.dtype == torch.float64
    assert empty.pos.shape == (0, 2) and empty.pos.dtype == torch.float32
    assert empty.time.shape == (0, 2) and empty.time.is_floating_point()
    assert list(empty.attributes()) == ["x", "pos", "time"]
    empty.validate("m")


def test_counts_and_attributes():
    node_set = nodes(time=torch.tensor([[0.0, 1.0]] * 3))
    assert (node_set.num_nodes, node_set.num_edges) == (3, 2)
    assert list(node_set.attributes()) == ["x", "time"]
    assert node_set.attributes()["time"] is node_set.time


def test_validate_accepts_good_node_sets():
    time = torch.tensor([[0.0, 0.5], [float("nan"), float("nan")], [1.0, 1.0]])  # NaN: unknown span
    node_set = nodes(pos=torch.arange(3), time=time)
    assert node_set.validate("m") is node_set
    integer_features = NodeSet(x=torch.arange(3), edge_index=torch.empty(2, 0, dtype=torch.long))
    integer_features.validate("m")


@pytest.mark.parametrize("changes, error, match", [
    ({"x": torch.tensor(1.0)}, TypeError, r"produced node features of type Tensor with shape \(\); expected a tensor"),
    ({"x": [[0.0], [1.0]]}, TypeError, "produced node features of type list"),
    ({"x": torch.tensor([[0.0], [float("nan")], [1.0]])}, ValueError, "received node features with 1 NaN/Inf"),
    ({"pos": torch.arange(2)}, ValueError, r"produced 'pos' with shape \(2,\) for 3 nodes; expected \[3, ...\]"),
    ({"pos": torch.tensor(0)}, ValueError, r"produced 'pos' with shape \(\) for 3 nodes"),
    ({"pos": [0, 1, 2]}, ValueError, r"produced 'pos' with shape \(\) for 3 nodes"),
    ({"time": torch.zeros(4, 2)}, ValueError, r"produced 'time' with shape \(4, 2\) for 3 nodes"),
    ({"time": torch.zeros(3)}, ValueError,
     r"produced 'time' of shape \(3,\) and dtype torch.float32; expected floating \(start, end\) seconds \[3, 2\]"),
    ({"time": torch.zeros(3, 3)}, ValueError, r"produced 'time' of shape \(3, 3\)"),
    ({"time": torch.zeros(3, 2, dtype=torch.long)}, ValueError, "produced 'time' .* and dtype torch.int64"),
    ({"time": torch.tensor([[0.0, 1.0], [2.0, 1.5], [0.0, 0.0]])}, ValueError,
     "has a time span whose end is before its start"),
    ({"time": torch.tensor([[0.0, float("inf")], [0.0, 1.0], [0.0, 1.0]])}, ValueError,
     "received time spans with 1 NaN/Inf"),
    ({"edge_index": torch.tensor([[0, 3], [1, 0]])}, ValueError,
     r"intra-modal edges of 'm' index nodes out of range: sources must lie in \[0, 3\)"),
    ({"edge_index": torch.tensor([[0, 1], [-1, 0]])}, ValueError, "intra-modal edges of 'm' index nodes out of range"),
    ({"edge_index": torch.tensor([[0, 1], [1, 0]], dtype=torch.int32)}, TypeError,
     r"intra-modal edges of 'm' must be a torch.long tensor of shape \[2, num_edges\]; .* dtype torch.int32"),
    ({"edge_index": torch.zeros(3, 2, dtype=torch.long)}, TypeError, r"received Tensor of shape \(3, 2\)"),
])
def test_validate_errors(changes, error, match):
    node_set = nodes()
    for name, value in changes.items():
        setattr(node_set, name, value)
    with pytest.raises(error, match=match) as info:
        node_set.validate("m")
    assert "'m'" in str(info.value)


# --- Modality and the registry ---------------------------------------------------------------------

def test_modality_is_abstract():
    with pytest.raises(TypeError):
        Modality()


def test_call_featurizes():
    modality = Constant(scale=2.0)
    node_set = modality([1.0, 2.0])
    assert torch.equal(node_set.x, torch.tensor([[2.0], [4.0]]))
    assert repr(modality) == "Constant()"
    assert Modality.relation == "intra"


def test_register_and_create_by_name():
    name = unique()
    registered = register_modality(name)(Constant)
    assert registered is Constant and Constant.name == name
    assert name in list_modalities() and list_modalities() == sorted(list_modalities())
    created = create_modality(name, scale=3.0)
    assert type(created) is Constant and created.scale == 3.0
    assert torch.equal(created([1.0]).x, torch.tensor([[3.0]]))


def test_register_as_decorator():
    name = unique()

    @register_modality(name)
    class Doubled(Constant):
        pass

    assert Doubled.name == name and Constant.name != name
    assert isinstance(create_modality(name), Doubled)


def test_builtin_modalities_are_registered():
    assert {"text", "image", "audio", "features"} <= set(list_modalities())
    image = create_modality("image", patch_size=2, channels=1)
    assert isinstance(image, ImageModality) and image.patch_size == 2
    assert isinstance(create_modality("features", dim=3), FeatureModality)


def test_duplicate_name_raises():
    name = unique()
    register_modality(name)(Constant)

    class Other(Constant):
        pass

    with pytest.raises(ValueError, match=f"A modality named '{name}' is already registered \\(Constant\\); choose "
                                         "another name"):
        register_modality(name)(Other)
    assert type(create_modality(name)) is Constant
    with pytest.raises(ValueError, match="A modality named 'text' is already registered"):
        register_modality("text")(Other)


def test_unknown_name_lists_registered():
    name = unique("missing")
    with pytest.raises(ValueError, match=f"Unknown modality '{name}'; registered: .*'audio'.*'text'") \
            as info:
        create_modality(name)
    assert str(list_modalities()) in str(info.value)
    assert f"@register_modality('{name}')" in str(info.value)


@pytest.mark.parametrize("thing", [int, lambda: None, Constant(), "Constant"])
def test_register_non_modality_raises(thing):
    name = unique()
    with pytest.raises(TypeError, match=f"register_modality\\('{name}'\\) expects a Modality subclass, got"):
        register_modality(name)(thing)
    assert name not in list_modalities()



# --- the structure key -----------------------------------------------------------------------------

def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


TOKENIZER = Tokenizer(["the", "cat", "sat"])
STRUCTURED = {  # modality: (two inputs of one structure, an input of another)
    "text": (TextModality(TOKENIZER, spans=True), "the cat sat", ["a", "b", "c"], "the cat"),
    "text window": (TextModality(TOKENIZER, window=2), "the cat sat", "a b c", "a b c d"),
    "image": (ImageModality(patch_size=4, channels=1), rand(8, 12), rand(1, 7, 10, seed=1), rand(8, 8)),
    "audio": (AudioModality(n_mels=8), rand(4000) - 0.5, rand(4050, seed=1) - 0.5, rand(8000) - 0.5),
    "features chain": (FeatureModality(dim=2, edges="chain", window=2), rand(5, 2), rand(5, 2, seed=1), rand(6, 2)),
    "features": (FeatureModality(dim=2), rand(5, 2), rand(5, 2, seed=1), rand(4, 2)),
}


@pytest.mark.parametrize("case", list(STRUCTURED))
def test_equal_structure_keys_mean_equal_edges_and_positions(case):
    modality, first, second, other = STRUCTURED[case]
    a, b, c = modality(first), modality(second), modality(other)
    assert a.structure is not None and hash(a.structure) == hash(b.structure)
    assert a.structure == b.structure != c.structure
    assert torch.equal(a.edge_index, b.edge_index)
    assert (a.pos is None and b.pos is None) or torch.equal(a.pos, b.pos)
    assert a.num_nodes == b.num_nodes != c.num_nodes


def test_structure_differs_with_settings():
    keys = {TextModality(TOKENIZER, window=w, self_loops=loops)("the cat sat").structure
            for w in (1, 2) for loops in (False, True)}
    keys |= {ImageModality(patch_size=4, channels=1, neighbourhood=n)(rand(8, 8)).structure for n in (4, 8)}
    assert len(keys) == 6


def test_data_dependent_structure_has_no_key():
    with_pos = FeatureModality(dim=2, positions=True)({"x": rand(3, 2), "pos": [0, 1, 2]})
    with_rule = FeatureModality(dim=2, edges=lambda nodes: torch.tensor([[0], [1]]))(rand(3, 2))
    assert with_pos.structure is None and with_rule.structure is None
