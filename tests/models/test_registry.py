import pytest
import torch

from graphfuse.models import (
    GraphFusionModel,
    GraphRetrievalModel,
    create_model,
    list_models,
    model_family,
    register_model,
    registry,
)
from graphfuse.nn import MultimodalOutput
from graphfuse.train import create_task, save_checkpoint

VARIANTS = ["graph-gcn", "graph-gat", "graph-hgt", "graph-gated", "graph-gat-knn"]
SMALL = dict(hidden_channels=8, heads=2, num_layers=1)
TASKS = {  # task -> (extra kwargs, output shape for a batch of 4)
    "classification": (dict(num_classes=3), (4, 3)),
    "multilabel": (dict(num_classes=5), (4, 5)),
    "regression": (dict(out_channels=2), (4, 2)),
    "retrieval": (dict(query=("text",), gallery=("image", "audio"), embed_dim=6), (4, 6)),
}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test do not outlive it."""
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())


def test_list_models():
    names = list_models()
    assert set(VARIANTS) <= set(names)
    assert names == sorted(names)
    assert list_models("graph-gat-*") == ["graph-gat-knn"]
    assert list_models("graph-ga*") == ["graph-gat", "graph-gat-knn", "graph-gated"]
    assert set(list_models(family="graph")) >= set(VARIANTS)
    assert list_models("no-such-*") == []
    for name in VARIANTS:
        assert model_family(name) == "graph"


def test_register_model(scratch_registry):
    @register_model("toy-linear", family="toy")
    def toy(in_channels=3, **kwargs):
        return torch.nn.Linear(in_channels, 2)

    assert toy(4).in_features == 4  # the decorator returns the factory
    assert "toy-linear" in list_models()
    assert list_models(family="toy") == ["toy-linear"]
    assert "toy-linear" not in list_models(family="graph")
    assert model_family("toy-linear") == "toy"
    assert create_model("toy-linear", in_channels=5).in_features == 5


def test_register_existing_name_raises(scratch_registry):
    factory = registry.MODELS.get("graph-gat")
    with pytest.raises(ValueError, match="A model named 'graph-gat' is already registered"):
        register_model("graph-gat", family="baseline")(lambda **kwargs: torch.nn.Identity())
    assert registry.MODELS.get("graph-gat") is factory
    assert model_family("graph-gat") == "graph"


def test_unknown_model(builder):
    with pytest.raises(ValueError, match=r"Unknown model 'graph-gin'; registered: \[.*'graph-gat', 'graph-gat-knn'.*"
                                         r"'graph-hgt'.*\]"):
        create_model("graph-gin", builder=builder, num_classes=3)
    with pytest.raises(ValueError, match=r"Unknown model 'graph-gin'; registered: \[.*'graph-gcn'"):
        model_family("graph-gin")


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", VARIANTS)
def test_create_model(builder, samples, make_batch, name, task):
    kwargs, shape = TASKS[task]
    torch.manual_seed(0)
    model = create_model(name, builder=builder, task=task, **kwargs, **SMALL)
    assert isinstance(model, GraphRetrievalModel if task == "retrieval" else GraphFusionModel)
    conv = {"graph-gcn": "gcn", "graph-hgt": "hgt", "graph-gated": "gated"}.get(name, "gat")
    assert [block.conv_name for block in model.backbone.fusion.blocks] == [conv]
    assert (model.backbone.fusion.knn is None) == (name != "graph-gat-knn")
    batch = make_batch(samples)  # sample 1 has no audio, sample 2 no image
    model.train()
    out = model(batch)
    if task != "retrieval":  # a graph classifier trains its unimodal heads beside the fused one
        assert isinstance(out, MultimodalOutput) and out.unimodal.shape == (4, 3, shape[1])
        assert out.node_types == ("text", "image", "audio")
        assert out.present.tolist() == [[True, True, True], [True, True, False], [True, False, True],
                                        [True, True, True]]
    if task == "retrieval":
        assert out["query"].shape == out["gallery"].shape == shape
        assert out["logit_scale"].shape == ()
        loss = create_task(model.task_name, model).loss(out, batch)
    else:
        assert out.output.shape == shape
        batch.y = {"classification": torch.tensor([0, 1, 2, 0]), "multilabel": torch.randint(0, 2, shape),
                   "regression": torch.randn(shape)}[task]
        loss = create_task(model.task_name, model).loss(out, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()


def test_knn_variant(builder):
    knn = create_model("graph-gat-knn", builder=builder, num_classes=3, **SMALL)
    assert repr(knn.backbone.fusion) == "FusionEncoder(8, num_layers=1, conv='gat', knn=8)"
    assert repr(create_model("graph-gat", builder=builder, num_classes=3, **SMALL).backbone.fusion) == \
        "FusionEncoder(8, num_layers=1, conv='gat')"
    # the caller's arguments win over the variant's defaults
    own = create_model("graph-gat-knn", builder=builder, num_classes=3, knn=3, **SMALL)
    assert repr(own.backbone.fusion) == "FusionEncoder(8, num_layers=1, conv='gat', knn=3)"
    assert knn.backbone.fusion.knn_update == "block"
    # edges chosen once per forward: the caller's choice, recorded with the model
    once = create_model("graph-gat-knn", builder=builder, num_classes=3, knn_update="forward", **SMALL)
    assert repr(once.backbone.fusion) == "FusionEncoder(8, num_layers=1, conv='gat', knn=8, knn_update='forward')"
    assert once.creation_config["kwargs"]["knn_update"] == "forward"
    with pytest.raises(ValueError, match="knn_update"):
        create_model("graph-gat-knn", builder=builder, num_classes=3, knn_update="layer", **SMALL)


@pytest.mark.parametrize("name, task", [(name, "classification") for name in VARIANTS] + [("graph-gat", "retrieval"),
                                                                                           ("graph-hgt", "regression")])
def test_checkpoint_path(builder, samples, make_batch, tmp_path, name, task):
    kwargs, _ = TASKS[task]
    batch = make_batch(samples)
    torch.manual_seed(0)
    model = create_model(name, builder=builder, task=task, **kwargs, **SMALL).eval()
    with torch.no_grad():
        expected = model(batch)  # also initialises the lazy encoders
    path = save_checkpoint(tmp_path / "model.pt", model.state_dict())
    torch.manual_seed(1)
    fresh = create_model(name, builder=builder, task=task, **kwargs, **SMALL).eval()
    with torch.no_grad():
        before = fresh(batch)
    torch.manual_seed(2)
    loaded = create_model(name, checkpoint_path=path, builder=builder, task=task, **kwargs, **SMALL).eval()
    with torch.no_grad():
        out = loaded(batch)
    if task == "retrieval":
        expected, before, out = expected["query"], before["query"], out["query"]
    assert not torch.allclose(before, expected)
    assert torch.equal(out, expected)


def test_checkpoint_path_mismatch(builder, tmp_path, samples, make_batch):
    model = create_model("graph-gcn", builder=builder, num_classes=3, **SMALL)
    model(make_batch(samples))
    path = save_checkpoint(tmp_path / "model.pt", model.state_dict())
    with pytest.raises(ValueError, match="model.pt"):
        create_model("graph-gcn", checkpoint_path=path, builder=builder, num_classes=4, **SMALL)


def test_a_seed_makes_the_initial_weights_repeatable_and_leaves_the_callers_state(builder):
    torch.manual_seed(5)
    expected = torch.rand(1)
    torch.manual_seed(5)
    first = create_model("graph-gat", builder=builder, num_classes=3, hidden_channels=8, seed=0)
    assert torch.equal(torch.rand(1), expected)  # the caller's generator was not advanced
    second = create_model("graph-gat", builder=builder, num_classes=3, hidden_channels=8, seed=0)
    third = create_model("graph-gat", builder=builder, num_classes=3, hidden_channels=8, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), third.state_dict().values(),
                                                     strict=True))


def test_a_model_records_how_it_was_made(builder, tmp_path):
    model = create_model("graph-gcn", builder=builder, seed=3, num_classes=3, hidden_channels=8, num_layers=1)
    assert model.creation_config == {"name": "graph-gcn", "kwargs": {"num_classes": 3, "hidden_channels": 8,
                                                                     "num_layers": 1}}
    retrieval = create_model("graph-gat", schema=builder.schema(), task="retrieval", hidden_channels=8)
    assert retrieval.creation_config == {"name": "graph-gat", "kwargs": {"task": "retrieval", "hidden_channels": 8}}
