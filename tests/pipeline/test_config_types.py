"""Every setting of a saved pipeline (pipeline.json) or builder (builder.json) replaced by a value of another type:
the file is read as data with its types checked, so each swap raises a CheckpointError naming the file, or the
value is a valid setting (an int where a float is meant, None where a setting is optional) that loads as written.
Before these checks, 180 of the 972 swaps below loaded silently and one raised a raw RuntimeError: e.g.
``self_loops: "false"`` turned the option on, ``neighbourhood: 4.0``, ``template_cache_bytes: "x"`` and
``relation: null`` loaded, ``pos_shape: [-1]`` failed in torch (and 62 swaps of a pretrained builder's settings,
e.g. ``trainable: "false"`` or ``image_size: [32.0, 32]``, loaded silently)."""
import copy
import json
import shutil

import pytest

from graphfuse import GraphBuilder, ImageEncoderModality, Pipeline, SpeechEncoderModality
from graphfuse.checkpoint import CheckpointError
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FeatureModality,
    ImageModality,
    RandomBipartite,
    StridedBipartite,
    TemporalAlignment,
    TextModality,
    Tokenizer,
    VirtualNodes,
)
from graphfuse.datasets import WORDS
from graphfuse.pipeline.folder import CONFIG_FILE

pytestmark = pytest.mark.usefixtures("one_thread")

# Settings that None leaves to a default or turns off.
OPTIONAL = {"max_length", "f_max", "edges", "modalities", "max_edges_per_sample", "class_names", "device",
            "image_size"}


def swapped_values(value):
    """Values of other JSON types (and bool for int, float for int, ...) to put in place of ``value``."""
    if isinstance(value, bool):
        return [None, 1, 0, "x", "false", 1.5, [], {}]
    if isinstance(value, int):
        return [None, True, 1.5, float(value), "x", [], {}, -1]
    if isinstance(value, float):
        return [None, True, "x", [], {}, int(value)]
    if isinstance(value, str):
        return [None, 1, True, [], {}, ""]
    if value is None:
        return ["x", 1, 1.5, True, [], {}]
    return [None, "x", 1, {} if isinstance(value, list) else []]


def valid(at, original, value) -> bool:
    """Whether ``value`` in place of ``original`` at ``at`` is itself a valid setting."""
    key, parent = at[-1], at[-2] if len(at) > 1 else None
    if value is None:
        return key in OPTIONAL or at == ("task", "name")  # the task then is the model's own
    if isinstance(original, float) and type(value) is int:
        return True
    if key == "sample_rate" and isinstance(value, float) and value.is_integer():
        return True  # a rate in Hz may be given as a whole float, as audio files give it
    if key in ("max_length", "cache_size") and type(value) is int and value >= 1:
        return True
    if key == "weights" and isinstance(original, str) and value is None:
        return True  # a fine-tuned backbone's weights are the model's
    if key == "extra_keys" and value == []:
        return True
    return parent in ("class_names", "extra_keys") and isinstance(value, str)


def entries(config):
    """The path of every entry of ``config`` but the list of files and their digests, and a backbone's settings
    (the transformers config, checked by transformers)."""
    found = []

    def walk(value, at):
        if at[:1] == ("files",) or at[-1:] == ("backbone",):
            return
        if at:
            found.append(at)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
        for key, child in children:
            walk(child, (*at, key))

    walk(config, ())
    return found


def lookup(config, at):
    for key in at:
        config = config[key]
    return config


def sweep(folder, name, load, saved_config):
    """Loads ``folder`` after each swap of an entry of its file ``name``; returns the swaps that went wrong."""
    path = folder / name
    original = json.loads(path.read_text())
    wrong = []
    for at in entries(original):
        for value in swapped_values(lookup(original, at)):
            config = copy.deepcopy(original)
            lookup(config, at[:-1])[at[-1]] = value
            path.write_text(json.dumps(config))
            try:
                loaded = load(folder)
            except CheckpointError as error:
                if str(path) not in str(error):
                    wrong.append((at, value, f"error not naming the file: {error}"))
                continue
            except Exception as error:  # noqa: BLE001 - every other error is what the test reports
                wrong.append((at, value, f"{type(error).__name__}: {error}"))
                continue
            if not valid(at, lookup(original, at), value):
                wrong.append((at, value, "loaded silently"))
            elif value is not None and lookup(saved_config(loaded), at) != value:
                wrong.append((at, value, f"loaded as {lookup(saved_config(loaded), at)!r}"))
    return wrong


def test_every_swapped_entry_of_pipeline_json_is_reported_or_valid(saved_classifier, tmp_path):
    folder = shutil.copytree(saved_classifier, tmp_path / "copy")
    wrong = sweep(folder, CONFIG_FILE, Pipeline.from_pretrained, Pipeline.get_config)
    assert not wrong, "\n".join(map(str, wrong))


def test_every_swapped_entry_of_builder_json_is_reported_or_valid(tmp_path):
    """A builder using every modality and cross-modal strategy that is saved without a backbone."""
    modalities = {
        "text": TextModality(Tokenizer.from_corpus([WORDS]), max_length=8, window=2, spans=True),
        "image": ImageModality(patch_size=2, neighbourhood=8, channels_last=True),
        "audio": AudioModality(sample_rate=8000, n_mels=8, f_max=3000.0, self_loops=True),
        "feat": FeatureModality(4, positions=True, timed=True, pos_shape=(2,), edges="chain", relation="near"),
    }
    builder = GraphBuilder(modalities, cross=[CrossEdges("text", "audio", TemporalAlignment(0.1), "aligned"),
                                              CrossEdges("image", "feat", StridedBipartite(3)),
                                              CrossEdges("text", "image", RandomBipartite(2, seed=3)),
                                              VirtualNodes(2, "hub", "joins", ("text", "image"))],
                           max_edges_per_sample=5000, template_cache_bytes=1 << 20, extra_keys=["id"])
    folder = builder.save(tmp_path / "builder")
    wrong = sweep(folder, "builder.json", GraphBuilder.load, GraphBuilder.get_config)
    assert not wrong, "\n".join(map(str, wrong))


def test_every_swapped_entry_of_a_pretrained_builder_json_is_reported_or_valid(vit, wav2vec2, tmp_path):
    pytest.importorskip("transformers")
    builder = GraphBuilder({"image": ImageEncoderModality(vit, device="cpu", self_loops=True, cache_size=8),
                            "audio": SpeechEncoderModality(wav2vec2, trainable=True, normalize=False)}, cross="full")
    folder = builder.save(tmp_path / "builder")
    wrong = sweep(folder, "builder.json", GraphBuilder.load, GraphBuilder.get_config)
    assert not wrong, "\n".join(map(str, wrong))
