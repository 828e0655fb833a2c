import pytest
import torch
import torch.nn.functional as F

from graphfuse.baselines import BaselineFusionModel, BaselineRetrievalModel, dense_modalities
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.models import create_model, list_models, model_family
from graphfuse.train import Trainer, create_task

BASELINES = ["early-fusion", "late-fusion", "lowrank-fusion", "mult", "tensor-fusion", "transformer-fusion"]
SMALL = dict(hidden_channels=8, heads=2, num_layers=1)


pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(net, batch, seed=0):
    """``net`` (its lazy encoders initialised on ``batch``) with noise on every parameter: zero-initialised biases
    and norm shifts would hide a padded or absent position leaking into the output."""
    with torch.no_grad():
        net(batch)
        generator = torch.Generator().manual_seed(seed)
        for parameter in net.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return net


def model(builder, name, seed=0, **kwargs):
    torch.manual_seed(seed)
    defaults = {} if kwargs.get("task") == "retrieval" else {"num_classes": 3}
    return create_model(name, builder=builder, **{**defaults, **SMALL, **kwargs})


@pytest.fixture
def mixed_samples():
    """Samples of different sizes, some missing a modality: 0 short without audio, 1 long, 2 long without
    image, 3 short."""
    short, long_ = synthetic_samples(2, tokens=2, grid=2, frames=2), synthetic_samples(2, tokens=5, grid=3, frames=6)
    samples = [short[0], long_[0], long_[1], short[1]]
    samples[0].pop("audio")
    samples[2].pop("image")
    return samples


def labelled_samples(num_samples=16):
    """Two classes, told apart by every modality: the first word, the image's brightness, the audio's loudness."""
    samples = synthetic_samples(num_samples, tokens=3, grid=2, frames=3, seed=2)
    labels = [i % 2 for i in range(num_samples)]
    for sample, label in zip(samples, labels, strict=True):
        sample["text"] = " ".join([WORDS[label]] + sample["text"].split()[1:])
        sample["image"] = sample["image"] // 2 + (128 if label else 0)
        waveform, rate = sample["audio"]
        sample["audio"] = (waveform * (4.0 if label else 0.25), rate)
    return samples, torch.tensor(labels)


# Registry -----------------------------------------------------------------------------------------
def test_registered_names_and_families():
    assert list_models(family="baseline") == BASELINES
    assert list_models(family="unimodal") == ["unimodal"]
    assert model_family("unimodal") == "unimodal"
    for name in BASELINES:
        assert model_family(name) == "baseline"


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("task, kwargs, shape", [
    ("classification", dict(num_classes=3), (4, 3)),
    ("multilabel", dict(num_classes=5), (4, 5)),
    ("regression", dict(out_channels=2), (4, 2)),
])
def test_tasks(builder, samples, make_batch, name, task, kwargs, shape):
    net = model(builder, name, task=task, **kwargs)
    assert isinstance(net, BaselineFusionModel) and net.builder is builder
    batch = make_batch(samples)  # samples 1 and 2 each lack a modality
    out = net(batch)
    assert out.shape == shape and bool(torch.isfinite(out).all())
    assert net.embed(batch).shape == (4, net.out_channels)
    assert net.task_name == task
    batch.y = {"classification": torch.tensor([0, 2, 1, 1]), "multilabel": torch.randint(0, 2, shape),
               "regression": torch.randn(4, 2)}[task]
    loss = create_task(net.task_name, net).loss(out, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)


# Invariances --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_padding_invariance(builder, mixed_samples, make_batch, name):
    net = perturbed(model(builder, name).eval(), make_batch(mixed_samples))
    with torch.no_grad():
        together = net(make_batch(mixed_samples))
        alone = torch.cat([net(make_batch([s])) for s in mixed_samples])  # sample 0 alone: a batch without audio
        graph = net(builder.build(mixed_samples[2]))  # one graph (GraphBuilder.build) is a batch of one
    assert together.shape == (4, 3) and bool(torch.isfinite(together).all())
    assert torch.allclose(together, alone, atol=1e-5)
    assert torch.allclose(graph, alone[2:3], atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_sample_permutation(builder, mixed_samples, make_batch, name):
    net = perturbed(model(builder, name, task="regression", out_channels=2).eval(), make_batch(mixed_samples))
    perm = [2, 0, 3, 1]
    with torch.no_grad():
        out = net(make_batch(mixed_samples))
        permuted = net(make_batch([mixed_samples[i] for i in perm]))
    assert torch.allclose(permuted, out[perm], atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_changing_one_modality(builder, samples, make_batch, edit, name):
    net = model(builder, name).eval()
    with torch.no_grad():
        out, other_image = net(make_batch(samples)), net(make_batch(edit(samples, "image")))
    assert not torch.allclose(out[[0, 1, 3]], other_image[[0, 1, 3]], atol=1e-5)
    assert torch.allclose(out[2], other_image[2], atol=1e-6)  # sample 2 has no image


@pytest.mark.parametrize("name", BASELINES)
def test_gradients_reach_the_input_encoders(builder, samples, make_batch, name):
    net = model(builder, name, dropout=0.0).train()
    batch = make_batch(samples)
    batch.y = torch.tensor([0, 1, 2, 0])
    create_task(net.task_name, net).loss(net(batch), batch).backward()
    encoders = [(n, p) for n, p in net.named_parameters() if n.startswith("encoders.")]
    assert {n.split(".")[1] for n, _ in encoders} == {"text", "image", "audio"}
    missing = [n for n, p in encoders if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in net.parameters())


@pytest.mark.parametrize("name", BASELINES)
def test_batch_without_audio(builder, samples, make_batch, name):
    net = model(builder, name, dropout=0.0).train()
    net(make_batch(samples)).sum().backward()  # initialise the lazy encoders
    net.zero_grad(set_to_none=True)
    no_audio = [{k: v for k, v in s.items() if k != "audio"} for s in samples]
    out = net(make_batch(no_audio))
    assert bool(torch.isfinite(out).all())
    out.logsumexp(-1).sum().backward()
    audio = [p for n, p in net.named_parameters() if n.startswith("encoders.audio.")]
    assert audio and all(p.grad is None or not bool(p.grad.any()) for p in audio)
    net.eval()
    with torch.no_grad():  # sample 1 lacks audio anyway: with or without audio in its batch, the same output
        assert torch.allclose(net(make_batch(no_audio))[1], net(make_batch(samples))[1], atol=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_bf16_autocast(builder, samples, make_batch, name):
    net = model(builder, name)
    batch = make_batch(samples)
    batch.y = torch.tensor([0, 1, 2, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(batch)
        loss = create_task(net.task_name, net).loss(out, batch)
    loss.backward()
    assert bool(torch.isfinite(out.float()).all()) and bool(torch.isfinite(loss))
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in net.parameters())


def test_late_fusion_by_hand(builder, samples, make_batch):
    net = model(builder, "late-fusion").eval()
    batch = make_batch(samples)
    with torch.no_grad():
        out = net(batch)
        h_dict = net.encoders(batch)
        dense = dense_modalities(h_dict, {t: batch[t].batch for t in h_dict}, 4)
        log_probs = {t: F.log_softmax(net.head.heads[i](net.modality_encoders[t](*dense[t])[0]), -1)
                     for i, t in enumerate(net.node_types)}
    assert torch.allclose(out[1], (log_probs["text"][1] + log_probs["image"][1]) / 2, atol=1e-6)  # no audio
    assert torch.allclose(out[2], (log_probs["text"][2] + log_probs["audio"][2]) / 2, atol=1e-6)  # no image
    assert torch.allclose(out[0], sum(log_probs.values())[0] / 3, atol=1e-6)


# Learning -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kwargs", [(name, {}) for name in BASELINES] + [("unimodal", {"modality": "image"})],
                         ids=[*BASELINES, "unimodal-image"])
def test_overfits_a_tiny_dataset(builder, make_batch, name, kwargs):
    samples, labels = labelled_samples()
    net = model(builder, name, num_classes=2, hidden_channels=16, dropout=0.0, **kwargs)
    batch = make_batch(samples)
    batch.y = labels
    net(batch)  # initialise the lazy encoders
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        loss = create_task(net.task_name, net).loss(net(batch), batch)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net.head.predict(net(batch)) == labels).float().mean()
    assert accuracy >= 0.9, (name, float(loss))


@pytest.mark.parametrize("name", ["early-fusion", "transformer-fusion"])
def test_retrieval_dual_encoder(builder, complete_samples, make_batch, edit, name):
    net = model(builder, name, task="retrieval", gallery=("image", "audio"), embed_dim=6,
                dropout=0.0)
    assert isinstance(net, BaselineRetrievalModel) and net.task_name == "retrieval"
    batch = make_batch(complete_samples)
    out = net(batch)
    assert set(out) == {"query", "gallery", "logit_scale"}
    assert out["query"].shape == out["gallery"].shape == (4, 6)
    assert torch.allclose(out["gallery"].norm(dim=-1), torch.ones(4), atol=1e-5)
    net.eval()
    with torch.no_grad():  # each side reads its own node types only
        query, gallery = net.encode(batch, "query"), net.encode(batch, "gallery")
        assert torch.equal(net.encode(make_batch(edit(complete_samples, "image")), "query"), query)
        assert torch.equal(net.encode(make_batch(edit(complete_samples, "text")), "gallery"), gallery)
        assert not torch.allclose(net.encode(make_batch(edit(complete_samples, "audio")), "gallery"), gallery)
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    # 40 steps: early fusion's seed-0 start sits on the InfoNCE plateau (ln 4) for about 25 of them.
    for _ in range(40):
        optimizer.zero_grad()
        loss = create_task(net.task_name, net).loss(net(batch), batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < 0.5 * losses[0]


def test_retrieval_trains_with_the_trainer(builder):
    net = model(builder, "early-fusion", task="retrieval")
    history = Trainer(net, builder, epochs=1, batch_size=4, lr=1e-2, progress=False).fit(
        synthetic_samples(8, tokens=3, grid=2, frames=3))
    assert len(history) == 1 and torch.isfinite(torch.tensor(history[0]["train_loss"]))


# Unimodal -----------------------------------------------------------------------------------------
def test_unimodal(builder, complete_samples, make_batch, edit):
    net = model(builder, "unimodal", modality="audio").eval()
    assert net.node_types == ["audio"] and list(net.encoders) == ["audio"]
    batch = make_batch(complete_samples)
    with torch.no_grad():
        out = net(batch)
        assert out.shape == (4, 3)
        assert torch.equal(net(make_batch(edit(complete_samples, "image"))), out)
        assert not torch.allclose(net(make_batch(edit(complete_samples, "audio"))), out)
    with pytest.raises(ValueError, match=r"'unimodal' needs the modality it reads, e.g. modality='image'; one of "
                                         r"\['text', 'image', 'audio'\]"):
        create_model("unimodal", builder=builder, num_classes=3)
    with pytest.raises(ValueError, match=r"modality='video'.*one of \['text', 'image', 'audio'\]"):
        create_model("unimodal", builder=builder, modality="video", num_classes=3)
    with pytest.raises(ValueError, match=r"drop \['node_types'\]"):
        create_model("unimodal", builder=builder, modality="text", node_types=["text"], num_classes=3)
    with pytest.raises(ValueError, match="retrieval matches two"):
        create_model("unimodal", builder=builder, modality="text", task="retrieval")
    no_audio = make_batch([{"text": s["text"]} for s in complete_samples])
    with pytest.raises(ValueError, match=r"the batch has no nodes of the node types \['audio'\]"):
        net(no_audio)


# Errors and repr ----------------------------------------------------------------------------------
def test_errors(builder, samples, make_batch):
    with pytest.raises(TypeError, match=r"create_model\('early-fusion', task='classification'\) got unknown keyword "
                                        r"arguments \['colour', 'tensor_dim'\]"):
        create_model("early-fusion", builder=builder, num_classes=3, colour="red", tensor_dim=4)
    with pytest.raises(ValueError, match="'tensor-fusion' has no retrieval form.*use 'early-fusion' or "
                                         "'transformer-fusion'"):
        create_model("tensor-fusion", builder=builder, task="retrieval")
    with pytest.raises(ValueError, match="fusion='mult' has no such form"):
        BaselineRetrievalModel(builder, fusion="mult")
    with pytest.raises(ValueError, match=r"\['embed_dim'\] only apply to task='retrieval'"):
        create_model("early-fusion", builder=builder, num_classes=3, embed_dim=4)
    with pytest.raises(ValueError, match=r"without a prediction head or fusion tensor; drop \['num_classes'\]"):
        create_model("transformer-fusion", builder=builder, task="retrieval", num_classes=3)
    with pytest.raises(ValueError, match="'mult' models use fusion='mult', got fusion='early'"):
        create_model("mult", builder=builder, num_classes=3, fusion="early")
    with pytest.raises(ValueError, match=r"BaselineFusionModel 'fusion' must be one of .*got 'concat'"):
        BaselineFusionModel(builder, num_classes=3, fusion="concat")
    with pytest.raises(ValueError, match=r"'node_types' must name distinct modalities of the builder \['text', "
                                         r"'image', 'audio'\], got \['text', 'video'\]"):
        BaselineFusionModel(builder, num_classes=3, node_types=["text", "video"])
    with pytest.raises(ValueError, match="fusion='mult' attends across modalities"):
        BaselineFusionModel(builder, num_classes=3, fusion="mult", node_types=["text"])
    with pytest.raises(ValueError, match="task='classification' needs 'num_classes'"):
        BaselineFusionModel(builder)
    with pytest.raises(TypeError, match=r"is built from the GraphSchema of its data \(builder.schema\(\)\) or the "
                                        r"GraphBuilder itself, got dict"):
        BaselineFusionModel({}, num_classes=3)
    with pytest.raises(ValueError, match="sides must not share node types"):
        BaselineRetrievalModel(builder, query=("text", "image"))
    net = model(builder, "early-fusion", node_types=["image", "audio"])
    only_text = make_batch([{"text": s["text"]} for s in samples])
    with pytest.raises(ValueError, match=r"the batch has no nodes of the node types \['image', 'audio'\]"):
        net(only_text)
    some_text = make_batch([{"text": samples[0]["text"]}, samples[1]])
    with pytest.raises(ValueError, match=r"samples \[0\] have no nodes of the node types \['image', 'audio'\]"):
        net(some_text)


def test_repr(builder):
    net = model(builder, "lowrank-fusion", node_types=["text", "audio"], rank=2)
    assert repr(net) == ("BaselineFusionModel(task='classification', fusion='lowrank', node_types=['text', 'audio'], "
                         "LowRankTensorFusion(8, num_modalities=2, rank=2, out_channels=8), ClassificationHead(8, 3))")
    late = model(builder, "late-fusion", task="regression", num_classes=None)
    assert repr(late) == ("BaselineFusionModel(task='regression', fusion='late', node_types=['text', 'image', "
                          "'audio'], LateFusion(8, num_modalities=3, out_channels=1, task='regression'))")
