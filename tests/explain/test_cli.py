import json

import pytest
import torch

from graphfuse import Pipeline
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


def test_explains_a_saved_pipeline(marked_task, tmp_path, capsys):
    builder = digits_builder()
    model = create_model("graph-hgt", schema=builder.schema(), num_classes=2, hidden_channels=8, heads=2, seed=0)
    with torch.no_grad():
        model.eval()(builder.collate([s for s, _ in _marked(2, 3)]))
    folder = Pipeline(builder, model).save_pretrained(tmp_path / "pipe")
    assert main(["--task", marked_task, "--pipeline", str(folder), "--out", str(tmp_path / "out"),
                 "--samples", "1"]) == 0
    printed = capsys.readouterr().out
    assert "pipeline:" in printed and "untrained" not in printed.split("\n")[0]
    assert (tmp_path / "out" / "sample0-text-audio-time.png").is_file()


@pytest.mark.parametrize("options, message", [
    (["--task", "nothing"], "unknown --task 'nothing'"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--model", "graph-nothing"], "unknown --model 'graph-nothing'"),
    (["--pipeline", "/nonexistent/pipe"], "is not a folder"),
])
def test_bad_options_stop_before_any_work(tmp_path, capsys, options, message):
    assert main(["--out", str(tmp_path / "out"), *options]) == 2
    assert message in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["--out", str(tmp_path / "file"), "--task", "digits"]) == 2
    assert "is a file" in capsys.readouterr().err
