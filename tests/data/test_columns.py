import pickle

import pytest
import torch

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.data import from_columns

CAPTIONS = ["a red cat", None, "a blue dog"]
IMAGES = [torch.rand(4, 4).tolist(), torch.rand(4, 4).tolist(), None]
LABELS = [0, 1, 2]
COLUMNS = {"caption": CAPTIONS, "img": IMAGES, "label": LABELS, "id": ["a", "b", "c"]}


@pytest.fixture
def column_builder():
    return GraphBuilder({"text": TextModality(Tokenizer("a red blue cat dog".split())),
                         "image": ImageModality(patch_size=2, channels=1)})


def rows():
    return [dict(zip(COLUMNS, values, strict=True)) for values in zip(*COLUMNS.values(), strict=True)]


def check_samples(samples, builder):
    assert len(samples) == 3
    first, second, third = samples
    assert first[0].keys() == {"text", "image"} and first[0]["text"] == "a red cat" and first[1] == 0
    assert second[0].keys() == {"image"} and third[0].keys() == {"text"}  # None: the modality is absent
    assert [label for _, label in samples] == LABELS  # iteration ends at the last row
    assert builder.collate([sample for sample, _ in samples])["image"].x.shape == (8, 4)


@pytest.mark.parametrize("source", [COLUMNS, rows()], ids=["dict of columns", "list of rows"])
def test_plain_columns_and_rows_give_samples_and_targets(source, column_builder):
    samples = from_columns(source, {"text": "caption", "image": "img"}, target="label")
    check_samples(samples, column_builder)
    assert [sample.keys() for sample in from_columns(source, {"text": "caption"})] == [{"text"}, set(), {"text"}]
    assert [label for _, label in samples[1:]] == [1, 2] and samples[-1][1] == 2
    assert pickle.loads(pickle.dumps(samples))[0][1] == 0


def test_a_hugging_face_dataset_reads_only_the_named_columns(column_builder):
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict(COLUMNS)
    samples = from_columns(dataset, {"text": "caption", "image": "img"}, target="label")
    check_samples(samples, column_builder)
    assert samples.table.source.column_names == ["caption", "img", "label"]


def test_a_pandas_frame_with_missing_values_leaves_those_modalities_out(column_builder):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"caption": ["a red cat", float("nan"), "a blue dog"], "img": IMAGES, "label": LABELS})
    check_samples(from_columns(frame, {"text": "caption", "image": "img"}, target="label"), column_builder)


@pytest.mark.parametrize("source, modalities, target, error, match", [
    (COLUMNS, {"text": "text"}, "labels", ValueError,
     r"names columns \['text', 'labels'\] that the data does not have; its columns are \['caption', 'img', 'label', "
     r"'id'\]"),
    ({"caption": ["a"], "label": [0, 1]}, {"text": "caption"}, "label", ValueError, "columns of equal length"),
    (COLUMNS, {"text": 3}, None, TypeError, "'modalities' must map each modality to a column name"),
    (COLUMNS, {"text": "caption"}, 0, TypeError, "'target' must be a column name or None"),
    ("text", {"text": "caption"}, None, TypeError, "takes a datasets.Dataset, a pandas DataFrame"),
    (["a cat"], {"text": "caption"}, None, TypeError, "takes a list of row dicts, got a list of str"),
])
def test_bad_sources_and_columns_are_refused(source, modalities, target, error, match):
    with pytest.raises(error, match=match):
        from_columns(source, modalities, target=target)


def test_rows_lacking_a_column_or_a_target_are_named():
    samples = from_columns([{"caption": "a", "label": 0}, {"label": 1}, {"caption": "b", "label": None}],
                           {"text": "caption"}, target="label")
    with pytest.raises(ValueError, match=r"Row 1 has no column 'caption' \(it has \['label'\]\)"):
        samples[1]
    with pytest.raises(ValueError, match=r"Row 2 has no target \(None in column 'label'\)"):
        samples[2]
