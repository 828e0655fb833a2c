"""A pipeline of pretrained encoders (two frozen, one fine-tuned) saves and loads whole: each frozen
backbone's weights in a file named by its modality, the fine-tuned one's with the model's, the
Hugging Face tokenizer as its own files; the reloaded pipeline predicts the same."""
import pytest
import torch

from graphfuse import GraphBuilder, ImageEncoderModality, Pipeline, SpeechEncoderModality, TextEncoderModality
from graphfuse.models import create_model

pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")


def samples(count: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    words = ["a red square", "the cat sat on the mat", "a blue circle"]
    return [{"text": words[i % 3], "image": torch.rand(3, 32, 32, generator=generator),
             "audio": torch.randn(400 + 40 * i, generator=generator)} for i in range(count)]


def test_a_pipeline_of_pretrained_encoders_round_trips(hf_tokenizer, bert, vit, wav2vec2, tmp_path):
    builder = GraphBuilder({"text": TextEncoderModality(hf_tokenizer, bert, device="cpu"),
                            "image": ImageEncoderModality(vit, device="cpu"),
                            "audio": SpeechEncoderModality(wav2vec2, trainable=True)}, cross="full")
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=8, heads=2, seed=0)
    assert any(name.startswith("backbone.encoders.audio.backbone") for name, _ in model.named_parameters())
    pipeline = Pipeline(builder, model, class_names=["no", "yes"])
    folder = pipeline.save_pretrained(tmp_path / "pretrained")

    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {"pipeline.json", "model.safetensors", "text.backbone.safetensors", "image.backbone.safetensors",
            "text.tokenizer/tokenizer.json"} <= names
    assert "audio.backbone.safetensors" not in names  # fine-tuned: its weights are the model's

    data = samples(5)
    expected = pipeline.predict(data, batch_size=2)
    loaded = Pipeline.from_pretrained(folder)
    got = loaded.predict(data, batch_size=2)
    assert got["labels"] == expected["labels"]
    torch.testing.assert_close(got["probabilities"], expected["probabilities"], rtol=0, atol=0)
    frozen = loaded.builder.modalities["image"].backbone
    assert all(torch.equal(a, b) for a, b in zip(frozen.state_dict().values(),
                                                  builder.modalities["image"].backbone.state_dict().values(),
                                                  strict=True))
