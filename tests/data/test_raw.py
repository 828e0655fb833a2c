import pickle
from pathlib import Path

import numpy
import pytest
import torch

from graphfuse import AudioModality, GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.data import RawDataset, from_columns, load_file


@pytest.fixture
def raw_builder():
    return GraphBuilder({"text": TextModality(Tokenizer("a red blue cat".split())),
                         "image": ImageModality(patch_size=4, channels=3),
                         "audio": AudioModality(sample_rate=8000)})


def write_files(folder: Path, count: int = 2) -> list[tuple[dict, int]]:
    """``count`` items of a .png image, a .npy recording and a caption."""
    image_module = pytest.importorskip("PIL.Image")
    generator = numpy.random.default_rng(0)
    items = []
    for index in range(count):
        image = folder / f"{index}.png"
        image_module.fromarray(generator.integers(0, 256, (8, 8, 3), dtype=numpy.uint8)).save(image)
        audio = folder / f"{index}.npy"
        numpy.save(audio, generator.standard_normal(2000).astype(numpy.float32))
        items.append(({"image": image, "audio": audio, "text": "a red cat"}, index % 2))
    return items


def test_items_are_loaded_and_featurised_when_indexed(raw_builder, tmp_path):
    items = write_files(tmp_path)
    dataset = RawDataset(items, raw_builder)
    nodes, target = dataset[1]
    expected = raw_builder.featurize({"image": load_file(items[1][0]["image"]),
                                      "audio": numpy.load(items[1][0]["audio"]), "text": "a red cat"})
    assert target == 1 and nodes.keys() == expected.keys() == {"text", "image", "audio"}
    assert all(torch.equal(nodes[key].x, expected[key].x) for key in nodes)
    assert raw_builder.collate([dataset[0][0], dataset[1][0]])["image"].x.shape == (8, 48)
    again = pickle.loads(pickle.dumps(dataset))[1][0]
    assert all(torch.equal(again[key].x, nodes[key].x) for key in nodes)


def test_image_files_of_floating_pixels_are_read_as_they_are_and_16_bit_ones_refused(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    builder = GraphBuilder({"image": ImageModality(patch_size=4, channels=1)})
    pixels = numpy.random.default_rng(0).random((8, 8), dtype=numpy.float32)
    image_module.fromarray(pixels).save(tmp_path / "depth.tiff")
    image_module.fromarray((pixels * 65535).astype(numpy.uint16)).save(tmp_path / "scan.png")
    nodes = RawDataset([{"image": tmp_path / "depth.tiff"}], builder)[0]
    assert torch.equal(nodes["image"].x, builder.featurize({"image": pixels})["image"].x)
    with pytest.raises(TypeError, match=r"received a PIL image of mode 'I;16' \(16-bit integer pixels\), which "
                                        r"converting to 8 bits would clip"):
        RawDataset([{"image": tmp_path / "scan.png"}], builder)[0]


def test_loaders_by_modality_read_strings_too(raw_builder, tmp_path):
    items = write_files(tmp_path, count=1)
    table = from_columns({"path": [str(items[0][0]["audio"])], "caption": ["a cat"]},
                         {"audio": "path", "text": "caption"})
    nodes = RawDataset(table, raw_builder, load={"audio": numpy.load})[0]
    assert nodes.keys() == {"audio", "text"} and nodes["text"].x.numel() == 2


@pytest.mark.parametrize("load, error, match", [
    ({"video": numpy.load}, ValueError, r"'load' names \['video'\], which are not modalities"),
    ({"audio": "numpy.load"}, TypeError, "'load' must map each modality to a callable"),
    (3, TypeError, "'load' must be a callable path -> raw input or a mapping"),
])
def test_bad_loaders_are_refused(raw_builder, load, error, match):
    with pytest.raises(error, match=match):
        RawDataset([], raw_builder, load=load)


def test_files_without_a_built_in_loader_say_how_to_read_them(tmp_path):
    with pytest.raises(ValueError, match=r"No built-in loader reads .*a '\.wav' file.*load=\{'<modality>'"):
        load_file(tmp_path / "clip.wav")
    (tmp_path / "caption.txt").write_text("a cat", encoding="utf-8")
    torch.save(torch.ones(2), tmp_path / "x.pt")
    assert load_file(tmp_path / "caption.txt") == "a cat" and torch.equal(load_file(tmp_path / "x.pt"), torch.ones(2))
