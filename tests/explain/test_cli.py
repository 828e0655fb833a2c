import json

import pytest
import torch

from graphfuse import AudioModality, GraphBuilder, ImageModality, Pipeline, TextModality, Tokenizer
from graphfuse.datasets.digits import AUDIO_RATE, MARKERS
from graphfuse.datasets.tasks import TASKS, TaskData, digits_builder, register_task
from graphfuse.explain.cli import main
from graphfuse.models import create_model

pytest.importorskip("matplotlib")
RATE = 11025


def _marked(size: int, seed: int) -> list:
    """Digits-shaped samples without speech synthesis: two timed markers over noise, and an
    image whose brightness is the label."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(size):
        label = int(torch.randint(2, (), generator=generator))
        kept = int(torch.randint(2, (), generator=generator))
        sample = {"text": {"tokens": ["keep" if i == kept else "skip" for i in range(2)],
                           "spans": [[0.0, 0.5], [0.5, 1.0]]},
                  "image": 0.2 * torch.rand(8, 8, generator=generator) + 0.6 * label,
                  "audio": (0.1 * torch.randn(RATE, generator=generator), RATE)}
        items.append((sample, label))
    return items


@pytest.fixture
def marked_task():
    def load(quick: bool = False, seed: int = 0) -> TaskData:
        return TaskData("_marked", "classification", digits_builder(), _marked(32, 0), _marked(16, 1),
                        _marked(12, 2), num_classes=2)

    register_task("_marked")(load)
    yield "_marked"
    TASKS.unregister("_marked")


def test_trains_explains_draws_and_measures(marked_task, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["--task", marked_task, "--out", str(out), "--seeds", "2", "--epochs", "1", "--samples", "2",
                 "--hidden", "8"]) == 0
    printed = capsys.readouterr().out
    assert "seed 0: test accuracy" in printed and "seed 1: test accuracy" in printed
    assert "'keep' own-word ratio (attention rollout" in printed and "untrained:" in printed
    report = json.loads((out / "explain.json").read_text())
    assert all(isinstance(v, float) for v in report["summary"]["ratio"])
    assert len(report["seeds"]) == 2 and len(report["summary"]["ratio"]) == 2
    # The markers are wired to their own span's frames only: the wiring alone makes the ratio large.
    assert min(report["summary"]["untrained_ratio"]) > 2 and "shows the wiring" in printed
    pictures = sorted(p.name for p in out.glob("*.png"))
    assert pictures == sorted(f"sample{i}-{name}.png" for i in range(2)
                              for name in ("graph", "contributions", "text-image-heatmap", "text-audio-time"))
    for picture in pictures:
        assert str(out / picture) in printed


def _saved(folder, builder=None, classes: int = 2, drop: tuple[str, ...] = ()):
    """A graph-hgt pipeline of ``builder`` (default: the digits builder) for ``classes`` classes,
    its lazy sizes set on marked samples without the modalities ``drop``."""
    builder = digits_builder() if builder is None else builder
    model = create_model("graph-hgt", schema=builder.schema(), num_classes=classes, hidden_channels=8, heads=2,
                         seed=0)
    with torch.no_grad():
        samples = [{k: v for k, v in s.items() if k not in drop} for s, _ in _marked(2, 3)]
        model.eval()(builder.collate(samples))
    return Pipeline(builder, model).save_pretrained(folder)


def test_explains_a_saved_pipeline(marked_task, tmp_path, capsys):
    folder = _saved(tmp_path / "pipe")
    assert main(["--task", marked_task, "--pipeline", str(folder), "--out", str(tmp_path / "out"),
                 "--samples", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pipeline:" in printed and "untrained" not in printed.split("\n")[0]
    assert (tmp_path / "out" / "sample0-text-audio-time.png").is_file()
    # A word no sample holds: the measure is missing for that reason, not for the data's timing.
    assert main(["--task", marked_task, "--pipeline", str(folder), "--out", str(tmp_path / "out"),
                 "--samples", "1", "--word", "nope"]) == 0
    assert ("(no own-word measure of 'nope': No sample holds the word 'nope' with 'audio' frames"
            in capsys.readouterr().out)


@pytest.mark.parametrize("damage, message", [
    ("empty", "holds no pipeline.json: it is not a saved pipeline"),
    ("checkpoint", "holds no pipeline.json: it is not a saved pipeline"),
    ("bad json", "pipeline.json is not valid JSON"),
    ("truncated weights", "model.safetensors is not the file that was saved"),
    ("missing weights", "model.safetensors (listed in"),
])
def test_a_folder_that_is_no_saved_pipeline_is_a_usage_error(marked_task, tmp_path, capsys, damage, message):
    folder = tmp_path / "pipe"
    if damage == "empty":
        folder.mkdir()
    elif damage == "checkpoint":  # a Trainer's checkpoint folder: weights, but no pipeline.json
        folder.mkdir()
        torch.save({"model": {}}, folder / "last.pt")
    else:
        _saved(folder)
        weights = folder / "model.safetensors"
        if damage == "bad json":
            (folder / "pipeline.json").write_text("{")
        elif damage == "truncated weights":
            weights.write_bytes(weights.read_bytes()[:100])
        else:
            weights.unlink()
    assert main(["--task", marked_task, "--pipeline", str(folder), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --pipeline cannot be loaded: ") and message in error
    assert "\n" not in error and str(folder) in error


def test_a_pipeline_saved_for_another_task_is_refused(marked_task, tmp_path, capsys):
    def refused(folder) -> str:
        assert main(["--task", marked_task, "--pipeline", str(folder), "--out", str(tmp_path / "out")]) == 2
        return capsys.readouterr().err

    error = refused(_saved(tmp_path / "classes", classes=3))
    assert ("error: --pipeline was saved for node types ['text', 'image', 'audio'] and 3 classes, but --task _marked "
            "has ['text', 'image', 'audio'] and 2 classes; pass the --task it was trained on") in error
    text_image = GraphBuilder({"text": TextModality(Tokenizer(["keep", "skip"]), spans=True),
                               "image": ImageModality(patch_size=4, channels=1)}, cross="full")
    error = refused(_saved(tmp_path / "types", text_image, drop=("audio",)))
    assert "saved for node types ['text', 'image'] and 2 classes, but --task _marked has ['text', 'image', 'audio']" \
        in error
    # The same node types and classes, but the pipeline cuts the images into other patches: the
    # model would read the task's samples as nodes it never saw.
    other_patches = GraphBuilder({"text": TextModality(Tokenizer(list(MARKERS)), spans=True),
                                  "image": ImageModality(patch_size=2, channels=1),
                                  "audio": AudioModality(sample_rate=AUDIO_RATE, n_mels=20, win_length=0.05,
                                                         hop_length=0.05)}, cross="full")
    error = refused(_saved(tmp_path / "patches", other_patches))
    assert ("error: --pipeline reads the samples otherwise than --task _marked does (image: feature_shape (4,) "
            "against (16,)): it was saved for another task; pass the --task it was trained on") in error


def test_a_model_without_attention_is_drawn_and_says_why_it_is_not_measured(marked_task, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--task", marked_task, "--out", str(out), "--model", "early-fusion", "--seeds", "1", "--epochs", "1",
                 "--samples", "1", "--hidden", "8"]) == 0
    printed = capsys.readouterr().out
    assert "(no own-word measure of 'keep': The model recorded no attention: it has no attention layers" in printed
    assert "timed word" not in printed  # the old message blamed the data
    assert "no attention layers" in json.loads((out / "explain.json").read_text())["unmeasured"]
    assert (out / "sample0-contributions.png").is_file()


@pytest.mark.parametrize("options, message", [
    (["--task", "nothing"], "unknown --task 'nothing'"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--model", "graph-nothing"], "unknown --model 'graph-nothing'; choose from early-fusion, graph-gat"),
    (["--model", "unimodal"], "error: --model 'unimodal' reads a single modality, which this command does not "
                              "choose; pick a model that fuses them: early-fusion"),
    (["--hidden", "30"], "error: --hidden 30 does not split over the 4 attention heads; pass a multiple of 4, e.g. "
                         "--hidden 32"),
    (["--pipeline", "/nonexistent/pipe"], "is not a folder"),
    *((["--pipeline", "/nonexistent/pipe", option, value], f"error: {option} has no effect with --pipeline: the "
                                                           f"pipeline holds its trained model; drop {option}")
      for option, value in (("--model", "graph-gat"), ("--seeds", "3"), ("--epochs", "10"), ("--hidden", "32"))),
    (["--pipeline", "/nonexistent/pipe", "--seeds", "1", "--epochs", "1"], "error: --seeds, --epochs have no effect "
                                                                           "with --pipeline"),
])
def test_bad_options_stop_before_any_work(tmp_path, capsys, options, message, monkeypatch):
    import graphfuse.datasets.tasks as tasks

    monkeypatch.setattr(tasks, "load_task", lambda *args, **kwargs: pytest.fail("a task was loaded"))
    assert main(["--out", str(tmp_path / "out"), *options]) == 2
    assert message in capsys.readouterr().err


def test_more_samples_than_the_test_split_holds_are_refused(marked_task, tmp_path, capsys):
    assert main(["--task", marked_task, "--out", str(tmp_path / "out"), "--samples", "13"]) == 2
    assert ("error: --samples 13 is more than the 12 test samples of --task '_marked' (its quick splits; --full for "
            "its full ones); pass at most 12") in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["--out", str(tmp_path / "file"), "--task", "digits"]) == 2
    assert "is a file" in capsys.readouterr().err
