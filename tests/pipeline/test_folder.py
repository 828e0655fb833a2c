"""A saved pipeline folder is written whole or not at all, and a missing, damaged, foreign or tampered file
gives an error naming it, with no code from the folder ever run."""
import json
import pickle
import shutil

import pytest
import torch

from graphfuse import GraphBuilder, Pipeline
from graphfuse.checkpoint import CheckpointError
from graphfuse.data import FeatureModality
from graphfuse.models import create_model
from graphfuse.pipeline.folder import CONFIG_FILE, WEIGHTS_FILE, digest
from tests.pipeline.conftest import raw_samples


@pytest.fixture
def folder(saved_classifier, tmp_path):
    """A copy of the saved classifier's folder to damage."""
    return shutil.copytree(saved_classifier, tmp_path / "copy")


def edit_config(folder, edit):
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def record_file(folder, name):
    """Tampering that also rewrites the file's size and digest in pipeline.json."""
    edit_config(folder, lambda config: config["files"].__setitem__(name, digest(folder / name)))


class WritesMarker:
    """A pickle that would create a file if it were ever unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_missing_or_foreign_folder(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="No saved pipeline at .*does not exist"):
        Pipeline.from_pretrained(tmp_path / "nowhere")
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="holds no pipeline.json: it is not a saved pipeline"):
        Pipeline.from_pretrained(folder)


@pytest.mark.parametrize("damage, error, match", [
    (lambda f: (f / CONFIG_FILE).write_text('{"format": "graphfuse-pipeline", '), ValueError,
     r"pipeline.json is not valid JSON"),
    (lambda f: edit_config(f, lambda c: c.update(format="something-else")), ValueError,
     "not a graphfuse pipeline file"),
    (lambda f: edit_config(f, lambda c: c.update(format_version=2, graphfuse_version="9.0")), ValueError,
     r"saved by a newer graphfuse \(9.0, pipeline format version 2\).*upgrade graphfuse"),
    (lambda f: edit_config(f, lambda c: c.pop("builder")), ValueError, r"lacks the entries \['builder'\]"),
    (lambda f: (f / WEIGHTS_FILE).unlink(), CheckpointError, r"model.safetensors \(listed in .*\) is missing"),
    (lambda f: (f / "text.tokenizer.json").unlink(), CheckpointError, r"tokenizer.json \(listed in .*\) is missing"),
    (lambda f: (f / WEIGHTS_FILE).write_bytes((f / WEIGHTS_FILE).read_bytes()[:100]), ValueError,
     r"model.safetensors is not the file that was saved .*truncated"),
    (lambda f: ((f / WEIGHTS_FILE).write_bytes((f / WEIGHTS_FILE).read_bytes()[:100]), record_file(f, WEIGHTS_FILE)),
     ValueError, r"model.safetensors is not a readable safetensors file"),
    (lambda f: edit_config(f, lambda c: c["model"].update(name="graph-unknown")), ValueError,
     r"the model could not be rebuilt: Unknown model 'graph-unknown'"),
    (lambda f: edit_config(f, lambda c: c["model"]["kwargs"].update(hidden_channels=16)), ValueError,
     r"model.safetensors does not fit the model .*wrong shape: \['backbone"),
    (lambda f: edit_config(f, lambda c: c["model"]["kwargs"].update(num_layers=3)), ValueError,
     r"does not fit the model .*missing: \["),
    (lambda f: edit_config(f, lambda c: c["builder"]["modalities"]["text"]["config"].update(
        tokenizer="/etc/passwd")), ValueError, r"the graph builder could not be rebuilt: .*not a plain file name"),
    (lambda f: edit_config(f, lambda c: c["files"].update({"../outside": {}})), ValueError,
     "not a plain file name"),
])
def test_a_damaged_folder_names_the_file(folder, damage, error, match):
    damage(folder)
    with pytest.raises(error, match=match):
        Pipeline.from_pretrained(folder)


@pytest.mark.parametrize("record", [False, True], ids=["as saved", "digest rewritten"])
def test_a_pickle_in_place_of_the_weights_is_never_run(folder, tmp_path, record):
    marker = tmp_path / "marker"
    (folder / WEIGHTS_FILE).write_bytes(pickle.dumps(WritesMarker(marker)))
    if record:
        record_file(folder, WEIGHTS_FILE)
    with pytest.raises(ValueError, match="model.safetensors is not"):
        Pipeline.from_pretrained(folder)
    assert not marker.exists()


def test_saving_never_leaves_a_half_folder(classifier, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("graphfuse.pipeline.pipeline.save_checkpoint", crash)
    with pytest.raises(OSError, match="disk full"):
        classifier.save_pretrained(tmp_path / "pipeline")
    assert list(tmp_path.iterdir()) == []


def test_saving_refuses_to_replace_what_is_not_a_pipeline(classifier, saved_classifier, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds other files"):
        classifier.save_pretrained(tmp_path / "work")
    assert (tmp_path / "work" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    classifier.save_pretrained(tmp_path / "empty")
    with pytest.raises(FileExistsError, match="already holds a saved pipeline; pass overwrite=True"):
        classifier.save_pretrained(tmp_path / "empty")
    classifier.save_pretrained(tmp_path / "empty", overwrite=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "work"]
    samples = raw_samples(3, seed=7)
    assert torch.equal(Pipeline.from_pretrained(tmp_path / "empty").predict(samples)["probabilities"],
                       classifier.predict(samples)["probabilities"])


def test_what_cannot_be_saved_is_named(classifier, tmp_path):
    builder = GraphBuilder({"points": FeatureModality(3, edges=lambda nodes: nodes.edge_index)})
    model = create_model("graph-gcn", builder=builder, task="regression", hidden_channels=8, num_layers=1)
    with pytest.raises(ValueError, match=r"FeatureModality 'points' edge rule uses the function .*<lambda>, which is "
                                         r"not registered.*register_function"):
        Pipeline(builder, model).save_pretrained(tmp_path / "lambda")
    assert not (tmp_path / "lambda").exists()
    bare = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="task' must be one of .*pass task="):
        Pipeline(classifier.builder, bare)
    plain = create_model("graph-gat", schema=classifier.builder.schema(), num_classes=3, hidden_channels=8,
                         num_layers=2, heads=2)
    del plain.creation_config
    with pytest.raises(ValueError, match="without knowing how to build it again.*model_name"):
        Pipeline(classifier.builder, plain).save_pretrained(tmp_path / "plain")
    named = Pipeline(classifier.builder, plain, model_name="graph-gat",
                     model_kwargs={"num_classes": 3, "hidden_channels": 8, "num_layers": 2, "heads": 2})
    named.save_pretrained(tmp_path / "plain")
    samples = raw_samples(2)
    assert torch.equal(Pipeline.from_pretrained(tmp_path / "plain").predict(samples)["probabilities"],
                       named.predict(samples)["probabilities"])
    odd = Pipeline(classifier.builder, plain, model_name="graph-gat", model_kwargs={"num_classes": 3,
                                                                                    "encoders": torch.nn.Identity()})
    with pytest.raises(TypeError, match="The model's argument 'encoders' is a Identity.*register a model factory"):
        odd.save_pretrained(tmp_path / "odd")
