"""A saved pipeline (or builder, tokenizer, gallery index) whose files are damaged, cut, of the wrong shape or
missing gives one error, CheckpointError, naming the file and what is wrong, and never a raw error or the advice
to unpickle."""
import json
import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphfuse import GraphBuilder, Pipeline, Tokenizer
from graphfuse.checkpoint import CheckpointError
from graphfuse.pipeline import GalleryIndex
from graphfuse.pipeline.folder import CONFIG_FILE, WEIGHTS_FILE, digest

RANDOM = bytes(random.Random(0).randrange(256) for _ in range(2000))


@pytest.fixture
def folder(saved_classifier, tmp_path):
    """A copy of the saved classifier's folder to damage."""
    return shutil.copytree(saved_classifier, tmp_path / "copy")


def assert_damage_reported(load, path, match: str = ""):
    with pytest.raises(CheckpointError, match=match) as raised:
        load()
    message = str(raised.value)
    assert str(path) in message, message
    assert "weights_only" not in message
    return raised.value


def edited(folder, edit) -> None:
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def replaced(folder, name: str, content: bytes, record: bool) -> None:
    """Writes ``content`` in place of the file ``name``; ``record`` also writes its new size and digest into
    pipeline.json, as a careless edit would, so that the file's own reading has to find the damage."""
    (folder / name).write_bytes(content)
    if record:
        edited(folder, lambda config: config["files"].__setitem__(name, digest(folder / name)))


# pipeline.json --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content, match", [
    (b"", "is not valid JSON"),
    (b"\xff\xfe{}", "is not valid JSON"),  # was a UnicodeDecodeError-based message; now the one error type
    (b"[" * 100_000, r"is not valid JSON \(nested too deeply\)"),  # was a raw RecursionError
    (b"[1, 2]", "is not a graphfuse pipeline file"),
    (b'{"format": "graphfuse-pipeline", "format_version": "1"}', "no valid \"format_version\""),
], ids=["empty", "not UTF-8", "nested too deeply", "a list", "a version that is a string"])
def test_a_damaged_pipeline_json(folder, content, match):
    (folder / CONFIG_FILE).write_bytes(content)
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / CONFIG_FILE, match)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_a_cut_pipeline_json(folder, fraction):
    path = folder / CONFIG_FILE
    text = path.read_bytes()
    path.write_bytes(text[:int(len(text) * fraction)])
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), path, "is not valid JSON")


@pytest.mark.parametrize("edit, match", [
    (lambda c: c.update(task=["classification"]), "malformed 'model' or 'task'"),
    (lambda c: c["task"].update(class_names=3), "'task' entry does not fit the model.*class_names"),  # raw TypeError
    (lambda c: c["task"].update(name=5), "'task' entry does not fit the model.*must be one of"),
    (lambda c: c.update(model="graph-gat"), "malformed 'model' or 'task'"),
    (lambda c: c["model"]["kwargs"].update(hidden_channels="8"), "the model could not be rebuilt"),
    (lambda c: c.update(builder="text"), "the graph builder could not be rebuilt"),
    (lambda c: c["builder"].update(modalities=[]), "the graph builder could not be rebuilt"),
    (lambda c: c["builder"]["modalities"].update(text=3), "the graph builder could not be rebuilt"),
    (lambda c: c["builder"].update(cross={}), "the graph builder could not be rebuilt"),
    (lambda c: c.update(files=[]), "no valid list of files"),
    (lambda c: c["files"].update({WEIGHTS_FILE: "sha"}), "not the file that was saved"),
    (lambda c: c.update(format_version=2, graphfuse_version=["x" * 1000]), "saved by a newer graphfuse"),
])
def test_pipeline_json_of_the_wrong_shape(folder, edit, match):
    edited(folder, edit)
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / CONFIG_FILE, match)


# The files pipeline.json lists ----------------------------------------------------------------------------------
@pytest.mark.parametrize("content, record, match", [
    (RANDOM, False, "is not the file that was saved"),
    (RANDOM, True, "is not a readable safetensors file"),
    (b"", True, r"is empty \(0 bytes\)"),
    (b'{"model": "weights"}', True, "is not a readable safetensors file"),
], ids=["garbage", "garbage, digest rewritten", "empty, digest rewritten", "json, digest rewritten"])
def test_damaged_weights(folder, content, record, match):
    replaced(folder, WEIGHTS_FILE, content, record)
    error = assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / WEIGHTS_FILE, match)
    assert "weights_only" not in str(error)


def test_changed_weights_are_found_by_their_digest(folder):
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0x01  # a tensor's bytes: safetensors itself cannot tell
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / WEIGHTS_FILE,
                           "its size or SHA-256 digest differs")


@pytest.mark.parametrize("name", [WEIGHTS_FILE, "text.tokenizer.json"])
def test_a_listed_file_that_is_missing(folder, name):
    (folder / name).unlink()  # was a FileNotFoundError
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / name, r"listed in .* is missing")


def test_a_damaged_tokenizer_with_its_digest_rewritten(folder):
    replaced(folder, "text.tokenizer.json", b"\xff\xfe not text", record=True)
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / "text.tokenizer.json",
                           "is not valid JSON")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_entry_of_the_wrong_type_loads_or_is_reported(saved_classifier, tmp_path_factory, data):
    """Any one entry of pipeline.json (but the list of files) replaced by a value of another type: the pipeline
    loads, or a CheckpointError names pipeline.json."""
    config = json.loads((saved_classifier / CONFIG_FILE).read_text())
    entries = []

    def walk(value, at):
        if at and at[0] != "files":
            entries.append(at)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            walk(child, (*at, key))

    walk(config, ())
    at = data.draw(st.sampled_from(entries), label="entry")
    value = data.draw(st.sampled_from([None, True, -1, 2.5, "x", [], {}, [1], {"a": 1}]), label="value")
    parent = config
    for key in at[:-1]:
        parent = parent[key]
    parent[at[-1]] = value
    folder = shutil.copytree(saved_classifier, tmp_path_factory.mktemp("fuzzed") / "copy")
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    try:
        Pipeline.from_pretrained(folder)
    except CheckpointError as error:
        assert str(folder / CONFIG_FILE) in str(error)


# A saved builder, a tokenizer file and a gallery index ----------------------------------------------------------
@pytest.mark.parametrize("damage, match", [
    (lambda path: path.write_bytes(path.read_bytes()[:50]), "is not valid JSON"),
    (lambda path: path.write_bytes(b"\x80\x02K\x01."), "is not valid JSON"),
    (lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "modalities": {"text": "x"}})),
     "the builder could not be rebuilt"),
    (lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "cross": [3]})),
     "the builder could not be rebuilt"),  # was a message not naming the file
], ids=["cut", "a pickle", "a modality that is a string", "a cross entry that is a number"])
def test_a_damaged_builder_json(classifier, tmp_path, damage, match):
    folder = classifier.builder.save(tmp_path / "builder")
    damage(folder / "builder.json")
    assert_damage_reported(lambda: GraphBuilder.load(folder), folder / "builder.json", match)


def test_a_tokenizer_file_that_is_not_text(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(b"\xff\xfe\x00\x01")  # was a raw UnicodeDecodeError
    assert_damage_reported(lambda: Tokenizer.load(path), path, "is not valid JSON")


@pytest.mark.parametrize("content", [RANDOM, b"", RANDOM[:7]], ids=["random bytes", "empty", "shorter than a header"])
def test_a_damaged_gallery_index(tmp_path, content):
    path = tmp_path / "gallery.safetensors"
    path.write_bytes(content)
    assert_damage_reported(lambda: GalleryIndex.load(path), path, "is not a readable safetensors file")


@pytest.mark.parametrize("edit", [
    lambda config: config["model"]["kwargs"].__setitem__("hidden_channels", 2 ** 40),
    lambda config: config["model"]["kwargs"].__setitem__("num_classes", 2 ** 40),
    lambda config: config["builder"]["modalities"]["image"]["config"].__setitem__("patch_size", 10 ** 8),
], ids=["hidden_channels 2^40", "num_classes 2^40", "patch_size 1e8"])
def test_sizes_too_large_to_allocate(folder, edit):
    """A hostile file may ask for any size: the allocator's refusal is the file's error, not torch's raw one."""
    edited(folder, edit)
    assert_damage_reported(lambda: Pipeline.from_pretrained(folder), folder / CONFIG_FILE, "could not be rebuilt")
