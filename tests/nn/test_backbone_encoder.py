"""Fine-tuned backbones inside a graph model: gradients reach them; frozen ones get none."""
import pytest
import torch

from graphfuse import GraphBuilder, ImageEncoderModality, SpeechEncoderModality, TextEncoderModality
from graphfuse.models import create_model
from graphfuse.nn import BackboneNodeEncoder, FrameEncoder, NodeEncoders, PatchEncoder
from graphfuse.testing import requires_cuda
from graphfuse.train import Trainer

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def tri_modal_samples(count=4):
    generator = torch.Generator().manual_seed(0)
    texts = ["a red square", "the cat sat on the mat", "a blue circle at the top", "reddish cats"]
    samples = []
    for i in range(count):
        sample = {"text": texts[i % len(texts)], "image": torch.rand(3, 32, 32, generator=generator),
                  "audio": torch.randn(300 + 40 * i, generator=generator)}
        if i == 1:
            del sample["image"]  # a missing modality: that sample has no image nodes
        samples.append(sample)
    return samples


def builder_of(hf_tokenizer, bert, vit, wav2vec2, trainable):
    return GraphBuilder({"text": TextEncoderModality(hf_tokenizer, bert, trainable=trainable, device="cpu"),
                         "image": ImageEncoderModality(vit, trainable=trainable, device="cpu"),
                         "audio": SpeechEncoderModality(wav2vec2, trainable=trainable, device="cpu")}, cross="full")


def first_layers(bert, vit, wav2vec2):
    return {"text": bert.embeddings.word_embeddings.weight, "image": vit.embeddings.patch_embeddings.projection.weight,
            "audio": wav2vec2.feature_extractor.conv_layers[0].conv.weight}


def test_gradients_reach_each_fine_tuned_backbone(hf_tokenizer, bert, vit, wav2vec2):
    builder = builder_of(hf_tokenizer, bert, vit, wav2vec2, trainable=True)
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=16, heads=2, seed=0).eval()
    assert all(isinstance(model.backbone.encoders[t], BackboneNodeEncoder) for t in ("text", "image", "audio"))
    assert model.backbone.encoders["text"].backbone.model is bert  # shared, not copied
    model(builder.collate(tri_modal_samples())).sum().backward()
    for node_type, weight in first_layers(bert, vit, wav2vec2).items():
        assert weight.grad is not None and weight.grad.abs().sum() > 0, node_type


def test_frozen_backbones_get_no_gradient_and_run_once(hf_tokenizer, bert, vit, wav2vec2):
    builder = builder_of(hf_tokenizer, bert, vit, wav2vec2, trainable=False)
    calls = []
    bert.register_forward_hook(lambda *args: calls.append(1))
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=16, heads=2, seed=0)
    assert not any(p is bert.embeddings.word_embeddings.weight for p in model.parameters())
    data = [(sample, i % 2) for i, sample in enumerate(tri_modal_samples())]
    Trainer(model, builder=builder, epochs=2, batch_size=2, progress=False).fit(data)
    assert len(calls) == 2  # featurised in the first epoch, once per batch of 2
    assert all(weight.grad is None for weight in first_layers(bert, vit, wav2vec2).values())


def test_fine_tuning_trains_end_to_end(hf_tokenizer, bert, vit, wav2vec2):
    builder = builder_of(hf_tokenizer, bert, vit, wav2vec2, trainable=True)
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=16, heads=2, seed=0)
    before = {t: w.detach().clone() for t, w in first_layers(bert, vit, wav2vec2).items()}
    data = [(sample, i % 2) for i, sample in enumerate(tri_modal_samples())]
    Trainer(model, builder=builder, epochs=1, batch_size=2, progress=False).fit(data)
    for node_type, weight in first_layers(bert, vit, wav2vec2).items():
        assert not torch.equal(weight, before[node_type]), node_type


def test_nodes_regroup_per_sample_and_map_back(vit):
    modality = ImageEncoderModality(vit, trainable=True)
    encoder = NodeEncoders.from_schema(GraphBuilder({"image": modality}).schema(), 8)["image"]
    assert isinstance(encoder.head, PatchEncoder) and encoder.backbone is modality.backbone
    assert repr(encoder).startswith("BackboneNodeEncoder(backbone=HFVisionEncoder, head=PatchEncoder(")
    images = [torch.rand(3, 32, 32), torch.rand(3, 32, 32)]
    nodes = [modality.featurize(image) for image in images]
    x, pos = torch.cat([n.x for n in nodes]), torch.cat([n.pos for n in nodes])
    batch = torch.tensor([3] * 16 + [5] * 16)  # gaps: samples 0-2 and 4 have no image
    encoder.backbone.eval()
    out = encoder(x, pos, batch=batch)
    alone = encoder(nodes[1].x, nodes[1].pos)
    assert out.shape == (32, 8) and torch.allclose(out[16:], alone, atol=1e-5)
    assert encoder(x[:0], pos[:0], batch=batch[:0]).shape == (0, 8)


def test_a_backbone_returning_the_wrong_shape_raises(vit):
    modality = ImageEncoderModality(vit, trainable=True)
    encoder = BackboneNodeEncoder(modality.backbone, FrameEncoder(32, 8))
    modality.backbone.forward_nodes = lambda x, mask, pos=None: torch.zeros(x.size(0), 3, 32)
    nodes = modality.featurize(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"returned hidden states of shape \(1, 3, 32\) for 16 nodes per sample"):
        encoder(nodes.x, nodes.pos)


@requires_cuda
def test_frozen_encoders_run_on_cuda_and_fine_tuned_ones_train_there(hf_tokenizer, bert, vit, wav2vec2):
    frozen = TextEncoderModality(hf_tokenizer, bert)  # default device: CUDA when there is one
    nodes = frozen("a red square")
    assert frozen.run_device().type == "cuda" and nodes.x.device.type == "cpu"
    torch.testing.assert_close(nodes.x, TextEncoderModality(hf_tokenizer, bert, device="cpu")("a red square").x,
                               atol=1e-4, rtol=1e-4)
    builder = builder_of(hf_tokenizer, bert, vit, wav2vec2, trainable=True)
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=16, heads=2, seed=0).cuda()
    model(builder.collate(tri_modal_samples()).to("cuda")).sum().backward()
    assert all(w.grad is not None and w.grad.is_cuda for w in first_layers(bert, vit, wav2vec2).values())
