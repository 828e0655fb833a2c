import itertools

import pytest
import torch

from graphfuse.models import GraphFusionModel, create_model
from graphfuse.nn import ModalityContext, NodeEncoders
from graphfuse.train import create_task

SMALL = dict(hidden_channels=8, heads=2, num_layers=2)


def model(builder, name="graph-gat", seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, builder=builder, **{"num_classes": 3, **SMALL, **kwargs})


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat", "graph-gat-knn"])
def test_no_leakage_across_samples(builder, samples, make_batch, name):
    net = model(builder, name).eval()
    with torch.no_grad():
        together = net(make_batch(samples))
        alone = torch.cat([net(make_batch([s])) for s in samples])
    assert together.shape == alone.shape == (4, 3)
    assert torch.allclose(together, alone, atol=1e-5)
    # a single graph (GraphBuilder.build) is a batch of one
    with torch.no_grad():
        assert torch.allclose(net(builder.build(samples[1])), alone[1:2], atol=1e-5)


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat"])
def test_changing_one_sample_changes_only_its_output(builder, samples, make_batch, edit, name):
    net = model(builder, name).eval()
    changed = list(samples)
    changed[3] = edit([samples[3]], "image")[0]
    with torch.no_grad():
        out, out_changed = net(make_batch(samples)), net(make_batch(changed))
    assert torch.allclose(out[:3], out_changed[:3], atol=1e-6)
    assert not torch.allclose(out[3], out_changed[3], atol=1e-4)


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat", "graph-hgt"])
def test_sample_permutation_equivariance(builder, samples, make_batch, name):
    net = model(builder, name, task="regression", out_channels=2).eval()
    perm = [2, 0, 3, 1]
    with torch.no_grad():
        out = net(make_batch(samples))
        permuted = net(make_batch([samples[i] for i in perm]))
    assert out.shape == (4, 2)
    assert torch.allclose(permuted, out[perm], atol=1e-5)


def open_context_gates(net: torch.nn.Module, value: float = 0.5) -> None:
    """Moves the modality-context gates off 0 (where they start, closed), as training does: a
    closed gate passes no gradient to the context's other parameters."""
    for module in net.modules():
        if isinstance(module, ModalityContext):
            module.gate.data.fill_(value)


def parameters_without_gradient(net: torch.nn.Module) -> list[str]:
    return [n for n, p in net.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat", "graph-hgt", "graph-gated", "graph-gat-knn"])
def test_gradients_reach_every_used_parameter(builder, samples, make_batch, name):
    net = model(builder, name, dropout=0.0).train()
    batch = make_batch(samples)
    batch.y = torch.tensor([0, 1, 2, 0])
    create_task(net.task_name, net).loss(net(batch), batch).backward()
    assert parameters_without_gradient(net) == []


@pytest.mark.parametrize("name", ["graph-gat", "graph-hgt"])
def test_modality_context_learns_once_its_gates_open(builder, samples, make_batch, name):
    net = model(builder, name, dropout=0.0, modality_context=True).train()
    batch = make_batch(samples)
    batch.y = torch.tensor([0, 1, 2, 0])
    create_task(net.task_name, net).loss(net(batch), batch).backward()
    closed = parameters_without_gradient(net)
    assert closed and all(".context." in n and not n.endswith(".gate") for n in closed)
    net.zero_grad(set_to_none=True)
    open_context_gates(net)
    create_task(net.task_name, net).loss(net(batch), batch).backward()
    assert parameters_without_gradient(net) == []


def test_no_gradient_to_an_absent_modality(builder, samples, make_batch):
    net = model(builder, "graph-gat", dropout=0.0).train()
    net(make_batch(samples)).output.sum().backward()  # initialise the lazy encoders
    net.zero_grad(set_to_none=True)
    no_audio = [{k: v for k, v in s.items() if k != "audio"} for s in samples]
    out = net(make_batch(no_audio))
    (out.output.logsumexp(-1).sum() + out.unimodal[out.present].logsumexp(-1).sum()).backward()
    audio_head = f"unimodal.heads.{net.unimodal.node_types.index('audio')}."
    for name, p in net.named_parameters():
        reached = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert reached != name.startswith(("backbone.encoders.audio.", audio_head)), name
    assert any(n.startswith("backbone.encoders.audio.") for n, _ in net.named_parameters())


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat"])
def test_embed_of_node_types(builder, samples, make_batch, edit, name):
    net = model(builder, name).eval()
    batch, other_image = make_batch(samples), make_batch(edit(samples, "image"))
    other_audio = make_batch(edit(samples, "audio"))
    with torch.no_grad():
        text = net.embed(batch, node_types=["text"])
        assert text.shape == (4, net.readout.out_channels)
        assert torch.equal(net.embed(other_image, node_types=["text"]), text)
        assert torch.equal(net.embed(other_audio, node_types=["text"]), text)
        assert not torch.allclose(net.embed(make_batch(edit(samples, "text")), node_types=["text"]), text)
        full = net.embed(batch)
        assert full.shape == text.shape
        changed = net.embed(other_image)
        # samples with an image change, sample 2 (no image) does not
        assert not torch.allclose(full[[0, 1, 3]], changed[[0, 1, 3]], atol=1e-4)
        assert torch.allclose(full[2], changed[2], atol=1e-6)
        assert not torch.allclose(full, text, atol=1e-4)
        # the subgraph of text and image ignores audio
        text_image = net.embed(batch, node_types=["text", "image"])
        assert torch.equal(net.embed(other_audio, node_types=["text", "image"]), text_image)


def test_embed_without_nodes_of_the_node_types(builder, samples, make_batch):
    net = model(builder)
    only_text = make_batch([{"text": s["text"]} for s in samples])
    with pytest.raises(ValueError, match=r"no nodes of the node types \['image'\]"):
        net.embed(only_text, node_types=["image"])


@pytest.mark.parametrize("task, shape", [("classification", (4, 3)), ("multilabel", (4, 3)), ("regression", (4, 1))])
def test_tasks(builder, samples, make_batch, task, shape):
    net = model(builder, task=task)
    batch = make_batch(samples)
    out = net(batch)
    assert out.output.shape == shape and out.unimodal.shape == (4, 3, shape[1])
    assert net.task_name == task
    assert getattr(net.head, "multilabel", False) == (task == "multilabel")
    batch.y = {"classification": torch.tensor([0, 2, 1, 1]), "multilabel": torch.randint(0, 2, shape),
               "regression": torch.randn(4)}[task]
    loss = create_task(net.task_name, net).loss(out, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_head_hidden_and_repr(builder):
    net = model(builder, head_hidden_channels=5, task="multilabel", num_classes=4)
    assert [m.out_features for m in net.head.mlp if isinstance(m, torch.nn.Linear)] == [5, 4]
    text = repr(net)
    assert text.startswith("GraphFusionModel(task='multilabel', FusionEncoder(8, num_layers=1, conv='gat') "
                           "(per modality), FusionEncoder(8, num_layers=1, conv='gat'), ")
    assert text.endswith(f"{net.readout!r}, ClassificationHead({net.readout.out_channels}, 4, hidden_channels=5))")


def test_errors(builder):
    with pytest.raises(ValueError, match=r"task='classification' needs 'num_classes'"):
        GraphFusionModel(builder, **SMALL)
    with pytest.raises(ValueError, match=r"task='multilabel' needs 'num_classes'"):
        GraphFusionModel(builder, task="multilabel", **SMALL)
    with pytest.raises(ValueError, match=r"GraphFusionModel 'task' must be one of \('classification', 'multilabel', "
                                         r"'regression'\), got 'retrieval'"):
        GraphFusionModel(builder, task="retrieval", num_classes=3, **SMALL)
    with pytest.raises(TypeError, match=r"is built from the GraphSchema of its data \(builder.schema\(\)\) or the "
                                        r"GraphBuilder itself, got dict"):
        GraphFusionModel({"text": None}, num_classes=3, **SMALL)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        GraphFusionModel(builder, num_classes=1, **SMALL)
    with pytest.raises(ValueError, match=r"'unimodal_ensemble' must be one of \('gated', True, False\), got 'always'"):
        GraphFusionModel(builder, num_classes=3, unimodal_ensemble="always", **SMALL)
    with pytest.raises(TypeError, match=r"A graph model got unknown options: 'hiden_channels' \(did you mean "
                                        r"'hidden_channels'\?\); 'zzz'\. Its fusion takes \[.*'norm_first'"):
        create_model("graph-gat", builder=builder, num_classes=3, hiden_channels=8, zzz=1)
    assert create_model("graph-gat", builder=builder, num_classes=3, norm_first=True, **SMALL) is not None
    net = model(builder)
    with pytest.raises(TypeError, match="takes a PyG batch"):
        net({"text": "a red square"})


def test_a_batch_of_another_builder_is_refused_not_read_in_part(builder, samples):
    from graphfuse.data import AudioModality, CrossEdges, GraphBuilder
    from graphfuse.testing import tri_modal_builder

    net = model(builder)
    node_types = builder.metadata()[0]
    more = GraphBuilder({**tri_modal_builder().modalities, "extra": AudioModality()}, cross="full")
    with pytest.raises(ValueError, match=r"The batch has node or edge types \['extra', .* that the model was not "
                                         r"built for .*: make the batch with the builder the model was created from"):
        net(more.collate([{**sample, "extra": sample["audio"]} for sample in samples if "audio" in sample]))
    renamed = GraphBuilder(tri_modal_builder().modalities, cross=[CrossEdges(a, b, "full", relation="joined")
                                                      for a, b in itertools.combinations(node_types, 2)])
    with pytest.raises(ValueError, match=r"\('text', 'joined', 'image'\)"):
        net(renamed.collate(samples))


@pytest.mark.parametrize(("ensemble", "gated"), [("gated", True), (True, False), (False, False)])
def test_unimodal_ensemble_sets_whether_the_votes_are_gated(builder, ensemble, gated):
    net = model(builder, unimodal_ensemble=ensemble)
    assert net.unimodal.gated is gated and net.unimodal.votes.tolist() == [True] * len(builder.modalities)
    assert model(builder).unimodal.gated  # the default


def test_a_state_dict_from_before_vote_gating_loads_with_every_head_voting(builder):
    net = model(builder)
    net.unimodal.votes.fill_(False)
    old = {k: v for k, v in model(builder).state_dict().items() if k != "unimodal.votes"}
    net.load_state_dict(old)
    assert net.unimodal.votes.all()


class ScaledImageEncoder(torch.nn.Module):
    """A user's own input encoder: ``(x, pos, time) -> [N, C]``."""

    def __init__(self, channels):
        super().__init__()
        self.proj = torch.nn.LazyLinear(channels)

    def forward(self, x, pos=None, time=None):
        return 2 * self.proj(x)


def test_an_input_encoder_swapped_through_create_model_is_used_and_trained(builder, samples, make_batch):
    encoders = NodeEncoders.from_schema(builder.schema(), SMALL["hidden_channels"])
    encoders["image"] = ScaledImageEncoder(SMALL["hidden_channels"])
    net = model(builder, encoders=encoders)
    assert net.backbone.encoders["image"] is encoders["image"] and net.backbone.encoders["text"] is encoders["text"]
    batch = make_batch(samples)
    batch.y = torch.tensor([0, 1, 2, 0])
    create_task(net.task_name, net).loss(net(batch), batch).backward()
    assert encoders["image"].proj.weight.grad.abs().sum() > 0
