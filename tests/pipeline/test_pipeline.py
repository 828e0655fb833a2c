"""Pipelines save, load in a fresh process and predict bit for bit the same; they serve predictions,
embeddings and gallery search from raw samples without touching the caller's random state."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graphfuse import GalleryIndex, GraphBuilder, Pipeline
from graphfuse.data import FeatureModality, NodeSet, register_function
from graphfuse.models import create_model
from graphfuse.pipeline.folder import CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE
from graphfuse.testing import UserModel, requires_cuda
from tests.pipeline.conftest import CLASS_NAMES, raw_samples

ROOT = Path(__file__).resolve().parents[2]
# CPU kernels sum in an order that depends on the thread count: both processes use one thread.
pytestmark = pytest.mark.usefixtures("one_thread")


@register_function("tests.pipeline.ring")
def ring(nodes: NodeSet) -> torch.Tensor:
    index = torch.arange(nodes.num_nodes)
    return torch.stack([index, (index + 1) % nodes.num_nodes])


FRESH_PROCESS = """
import sys, torch
from safetensors.torch import save_file
from graphfuse import Pipeline
from graphfuse.data import register_function
from tests.pipeline.conftest import raw_samples

@register_function("tests.pipeline.ring")  # what the user's module does when imported
def ring(nodes):
    index = torch.arange(nodes.num_nodes)
    return torch.stack([index, (index + 1) % nodes.num_nodes])

torch.set_num_threads(1)  # as the test process
classifier, retriever, features, out = sys.argv[1:]
samples = raw_samples(6, seed=3)
tensors = {}
pipeline = Pipeline.from_pretrained(classifier)
prediction = pipeline.predict(samples, batch_size=4)
tensors["probabilities"] = prediction["probabilities"]
print(",".join(prediction["labels"]))
pipeline = Pipeline.from_pretrained(retriever)
index = pipeline.index([{"image": s["image"], "audio": s["audio"]} for s in samples])
found = pipeline.search([{"text": s["text"]} for s in samples], index, k=3, rerank=4)
tensors.update(gallery=index.embeddings, indices=found["indices"], scores=found["scores"])
pipeline = Pipeline.from_pretrained(features)
tensors["regression"] = pipeline.predict([{"points": torch.ones(4, 3)}])["predictions"]
save_file(tensors, out)
"""


def features_pipeline(tmp_path: Path) -> tuple[Pipeline, Path]:
    builder = GraphBuilder({"points": FeatureModality(3, edges=ring)})
    model = create_model("graph-gcn", builder=builder, task="regression", hidden_channels=8, num_layers=1, seed=1)
    pipeline = Pipeline(builder, model)
    return pipeline, pipeline.save_pretrained(tmp_path / "features")


def test_a_fresh_process_predicts_bit_for_bit_the_same(classifier, retriever, saved_classifier, saved_retriever,
                                                       tmp_path):
    features, saved_features = features_pipeline(tmp_path)
    out = tmp_path / "fresh.safetensors"
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(saved_classifier), str(saved_retriever),
                             str(saved_features), str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    fresh = load_file(out)
    samples = raw_samples(6, seed=3)
    prediction = classifier.predict(samples, batch_size=4)
    assert torch.equal(fresh["probabilities"], prediction["probabilities"])
    assert result.stdout.strip() == ",".join(prediction["labels"])
    assert set(prediction["labels"]) <= set(CLASS_NAMES)
    index = retriever.index([{"image": s["image"], "audio": s["audio"]} for s in samples])
    found = retriever.search([{"text": s["text"]} for s in samples], index, k=3, rerank=4)
    assert torch.equal(fresh["gallery"], index.embeddings)
    assert torch.equal(fresh["indices"], found["indices"]) and torch.equal(fresh["scores"], found["scores"])
    assert torch.equal(fresh["regression"], features.predict([{"points": torch.ones(4, 3)}])["predictions"])


def test_the_folder_holds_json_and_safetensors_only(saved_classifier, classifier):
    assert sorted(path.name for path in saved_classifier.iterdir()) == [WEIGHTS_FILE, CONFIG_FILE,
                                                                       "text.tokenizer.json"]
    config = json.loads((saved_classifier / CONFIG_FILE).read_text())
    assert (config["format"], config["format_version"]) == (FORMAT, FORMAT_VERSION)
    assert config["task"] == {"name": "classification", "class_names": CLASS_NAMES}
    assert config["model"] == {"name": "graph-gat", "kwargs": {"num_classes": 3, "hidden_channels": 8,
                                                               "num_layers": 2, "heads": 2}}
    assert config["builder"] == classifier.builder.get_config()
    assert set(config["files"]) == {WEIGHTS_FILE, "text.tokenizer.json"}
    assert not [path for path in saved_classifier.parent.iterdir() if path.name.startswith(".")]  # no temporaries


def test_predict_is_deterministic_and_leaves_the_random_state(classifier, retriever):
    samples = raw_samples(5, seed=4)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = classifier.predict(samples, batch_size=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first["probabilities"], classifier.predict(samples, batch_size=2)["probabilities"])
    assert first["probabilities"].shape == (5, 3) and torch.allclose(first["probabilities"].sum(1), torch.ones(5))
    assert classifier.model.training  # left in the mode it was in (after fit: training)
    embeddings = retriever.predict([{"text": s["text"]} for s in samples])["embeddings"]
    assert embeddings.shape == (5, 8) and torch.allclose(embeddings.norm(dim=1), torch.ones(5))
    gallery = retriever.predict([{"image": s["image"]} for s in samples])["embeddings"]
    assert torch.equal(gallery, retriever.predict([{"image": s["image"]} for s in samples], side="gallery")[
        "embeddings"])
    with pytest.raises(ValueError, match="could not tell which retrieval side"):
        retriever.predict(samples)
    with pytest.raises(ValueError, match="non-empty list of samples.*wrap one sample in a list"):
        classifier.predict(samples[0])


def test_search_ranks_the_gallery_and_reranks_the_top(retriever, tmp_path):
    samples = raw_samples(5, seed=5)
    queries = [{"text": s["text"]} for s in samples]
    index = retriever.index([{"image": s["image"], "audio": s["audio"]} for s in samples])
    found = retriever.search(queries, index, k=5)
    similarity = retriever.predict(queries)["embeddings"] @ index.embeddings.T
    assert torch.equal(found["indices"], similarity.argsort(dim=1, descending=True))
    reranked = retriever.search(queries, index, k=2, rerank=3)
    assert reranked["indices"].shape == (5, 2)
    for row, top in zip(reranked["indices"].tolist(), found["indices"][:, :3].tolist(), strict=True):
        assert set(row) <= set(top)  # re-ranking reorders the top 3 candidates
    loaded = GalleryIndex.load(index.save(tmp_path / "gallery.safetensors"))
    assert torch.equal(loaded.embeddings, index.embeddings)
    assert torch.equal(retriever.search(queries, loaded, k=5)["indices"], found["indices"])
    with pytest.raises(ValueError, match="does not hold.*pipeline.index"):
        retriever.search(queries, loaded, rerank=True)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        GalleryIndex.load(tmp_path / "bad.safetensors")


def test_pipeline_arguments_are_checked(classifier, retriever):
    with pytest.raises(ValueError, match="2 class names for a model of 3 classes"):
        Pipeline(classifier.builder, classifier.model, class_names=["a", "b"])
    with pytest.raises(ValueError, match="'class_names' apply to classification tasks"):
        Pipeline(retriever.builder, retriever.model, class_names=["a"])
    with pytest.raises(ValueError, match="serves retrieval pipelines"):
        classifier.index(raw_samples(2))
    no_rerank = create_model("graph-gcn", builder=retriever.builder, task="retrieval", query=["text"],
                             gallery=["image"], hidden_channels=8, num_layers=1, rerank=False)
    samples = raw_samples(2)
    with pytest.raises(ValueError, match="needs a model with a re-ranker"):
        Pipeline(retriever.builder, no_rerank).search([{"text": s["text"]} for s in samples],
                                                      [{"image": s["image"]} for s in samples], rerank=True)


def test_a_task_the_model_was_not_created_for_is_refused(classifier, retriever):
    builder = classifier.builder
    for task in ("regression", "retrieval"):
        with pytest.raises(ValueError, match=rf"Pipeline got task='{task}', but GraphFusionModel was created for "
                                             rf"'classification' \(its model.task_name\): leave task= out to use "
                                             rf"'classification', or create the model for '{task}'"):
            Pipeline(builder, classifier.model, task=task)
    with pytest.raises(ValueError, match="task='classification', but GraphRetrievalModel was created for 'retrieval'"):
        Pipeline(builder, retriever.model, task="classification")

    samples = raw_samples(3, seed=8)
    expected = classifier.predict(samples)["probabilities"]
    assert torch.equal(Pipeline(builder, classifier.model, task="classification").predict(samples)["probabilities"],
                       expected)
    assert torch.equal(Pipeline(builder, UserModel(classifier.model), task="classification").predict(samples)[
        "probabilities"], expected)  # a model that names no task takes the one given
    queries = [{"text": s["text"]} for s in samples]
    assert torch.equal(Pipeline(builder, retriever.model, task="retrieval").predict(queries)["embeddings"],
                       retriever.predict(queries)["embeddings"])


def test_a_gallery_index_of_another_embedding_size_is_refused(retriever):
    other = create_model("graph-gcn", builder=retriever.builder, task="retrieval", query=["text"],
                         gallery=["image", "audio"], hidden_channels=8, embed_dim=16, num_layers=1, rerank=False)
    samples = raw_samples(3, seed=9)
    gallery = [{"image": s["image"], "audio": s["audio"]} for s in samples]
    index = Pipeline(retriever.builder, other).index(gallery)
    queries = [{"text": s["text"]} for s in samples]
    with pytest.raises(ValueError, match=r"Pipeline.search: this model embeds queries in 8 dimensions, but the "
                                         r"GalleryIndex holds 16-dimensional embeddings, so another model built it; "
                                         r"rebuild the index with this pipeline, pipeline.index\(gallery_samples\)"):
        retriever.search(queries, index)
    assert retriever.search(queries, retriever.index(gallery), k=2)["indices"].shape == (3, 2)


def test_a_device_that_does_not_parse_or_is_not_there_is_refused(classifier, saved_classifier, monkeypatch):
    with pytest.raises(ValueError, match=r"Pipeline.from_pretrained 'device' must be None, a torch.device or a device "
                                         r"name such as 'cpu', 'cuda' or 'cuda:0', got 'gpu'"):
        Pipeline.from_pretrained(saved_classifier, device="gpu")
    with pytest.raises(ValueError, match=r"Pipeline.to 'device' must be None, a torch.device .* got 'gpu'"):
        classifier.to("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"Pipeline.from_pretrained 'device' is 'cuda', but no CUDA device is "
                                         r"available"):
        Pipeline.from_pretrained(saved_classifier, device="cuda")
    with pytest.raises(ValueError, match=r"Pipeline.to 'device' is 'cuda:0', but no CUDA device is available"):
        classifier.to("cuda:0")
    assert Pipeline.from_pretrained(saved_classifier, device="cpu").device == torch.device("cpu")
    assert classifier.to(torch.device("cpu")) is classifier and classifier.device == torch.device("cpu")


@requires_cuda
def test_a_pipeline_serves_on_the_gpu(classifier, saved_classifier, saved_retriever):
    samples = raw_samples(4, seed=6)
    on_gpu = Pipeline.from_pretrained(saved_classifier, device="cuda")
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.predict(samples)["probabilities"], classifier.predict(samples)["probabilities"],
                               rtol=1e-4, atol=1e-5)
    retriever = Pipeline.from_pretrained(saved_retriever, device="cuda")
    index = retriever.index([{"image": s["image"], "audio": s["audio"]} for s in samples])
    found = retriever.search([{"text": s["text"]} for s in samples], index, k=2, rerank=3)
    assert found["indices"].shape == (4, 2) and found["indices"].device.type == "cpu"


def test_swapped_input_encoders_save_through_a_registered_model_factory(monkeypatch, tmp_path):
    from graphfuse.models import GraphFusionModel, registry
    from graphfuse.nn import NodeEncoders, PatchEncoder
    from graphfuse.testing import tri_modal_builder

    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())  # the registration does not outlive the test

    @registry.register_model("own-image-encoder")
    def own_image_encoder(schema, num_classes, hidden_channels=8):  # `schema` may be the builder
        encoders = NodeEncoders.from_schema(schema, hidden_channels)
        encoders["image"] = PatchEncoder(encoders["image"].proj.in_features, hidden_channels, max_grid=16)
        return GraphFusionModel(schema, num_classes=num_classes, hidden_channels=hidden_channels, heads=2,
                                encoders=encoders)

    builder = tri_modal_builder()
    model = create_model("own-image-encoder", builder=builder, num_classes=3, seed=0)
    samples = raw_samples(3)
    expected = Pipeline(builder, model).predict(samples)["probabilities"]
    loaded = Pipeline.from_pretrained(Pipeline(builder, model).save_pretrained(tmp_path / "own"))
    assert loaded.model.backbone.encoders["image"].row.num_embeddings == 16
    assert torch.equal(loaded.predict(samples)["probabilities"], expected)
    swapped = create_model("graph-gat", builder=builder, num_classes=3, hidden_channels=8, heads=2,
                           encoders=model.backbone.encoders)
    with pytest.raises(TypeError, match="'encoders' is a NodeEncoders(.|\n)*register a model factory"):
        Pipeline(builder, swapped).save_pretrained(tmp_path / "refused")
