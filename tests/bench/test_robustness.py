import csv
import json

import pytest

from graphfuse.bench import robustness
from graphfuse.bench.__main__ import main as cli
from graphfuse.bench.accuracy import runner
from graphfuse.bench.robustness.claims import format_claims, task_claims
from graphfuse.train import Trainer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(tmp_path, *argv):
    """``python -m graphfuse.bench robustness ARGV`` in this process, outputs in ``tmp_path``."""
    path = tmp_path / "report.json"
    code = cli(["robustness", "--no-progress", "--threads", "1", "--jobs", "1", "--out", str(tmp_path / "out"),
                "--json", str(path), *argv])
    return code, json.loads(path.read_text())


def test_each_fused_method_trains_with_and_without_dropout_and_is_scored_without_each_pair(
        tmp_path, tiny_tasks, monkeypatch):
    dropouts = []
    init = Trainer.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        dropouts.append((type(self.model).__name__, self.modality_dropout))

    monkeypatch.setattr(Trainer, "__init__", recording)
    code, report = run(tmp_path, "--tasks", "_tiny", "--methods", "graph-gat*", "early-fusion*", "unimodal-image",
                       "--seeds", "2", "--modality-dropout", "0.3")
    assert code == 0 and list(report["tasks"]) == ["_tiny"]
    rows = {row["method"]: row for row in report["tasks"]["_tiny"]["results"]}
    assert list(rows) == ["graph-gat", "graph-gat+drop-out", "early-fusion", "early-fusion+drop-out",
                          "unimodal-image"]
    assert [rows[name]["modality_dropout"] for name in rows] == [0.0, 0.3, 0.0, 0.3, None]
    # The Trainer of every run got the row's probability; the unimodal model its own (none).
    assert sorted(p for _, p in dropouts) == sorted([0.0] * 4 + [0.3] * 4 + [0.0] * 2)
    for name in ("graph-gat+drop-out", "early-fusion"):
        row = rows[name]
        assert set(row["without"]) == {"text", "image", "audio"}
        assert set(row["without_pair"]) == {"text+image", "text+audio", "image+audio"}
        # With three modalities, removing a pair leaves the third alone.
        assert row["without_pair"]["text+image"] == row["only"]["audio"]
        assert row["without_pair"]["image+audio"]["seeds"] == [run["missing"]["only"]["text"] for run in row["runs"]]
    assert "without" not in rows["unimodal-image"] or not rows["unimodal-image"]["without"]

    targets = [target for _, target in tiny_tasks["_tiny"]().test]
    assert report["tasks"]["_tiny"]["chance"] == pytest.approx(100 * max(targets.count(0), targets.count(1)) / 32)
    claims = report["tasks"]["_tiny"]["claims"]
    assert claims == report["claims"] == task_claims("_tiny", report["tasks"]["_tiny"])
    kinds = {(claim["claim"], claim["removed"]) for claim in claims}
    # unimodal-image remains only when the text or the audio is removed
    assert kinds == {("graph >= best unimodal of the rest", "text"), ("graph >= best unimodal of the rest", "audio"),
                     *(("graph loses less than early-fusion", m) for m in ("text", "image", "audio")),
                     *(("graph above early-fusion", m) for m in ("text", "image", "audio")),
                     ("drop-out costs <= 2 points", None)}

    out = tmp_path / "out"
    assert (out / "robustness.png").read_bytes().startswith(PNG_MAGIC)
    markdown = (out / "robustness.md").read_text()
    assert "| method | family | drop-out | all modalities | without text | without image | without audio | " \
           "without text+image |" in markdown
    assert "| graph-gat+drop-out | graph | 0.3 |" in markdown and "- graph loses less than early-fusion" in markdown
    with open(out / "robustness.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    gat = [line for line in lines if line["method"] == "graph-gat+drop-out"]
    assert [(line["removed"], line["kept"]) for line in gat] == [
        ("", ""), ("text", ""), ("image", ""), ("audio", ""), ("text+image", ""), ("text+audio", ""),
        ("image+audio", "")]
    assert float(gat[4]["accuracy_mean"]) == pytest.approx(rows["graph-gat+drop-out"]["only"]["audio"]["mean"])


def _row(method, family, model, mean, dropout=None, without=None, std=1.0):
    return {"method": method, "family": family, "model": model, "mean": mean, "std": std, "modality_dropout": dropout,
            "without": {m: {"mean": v, "std": 0.5} for m, v in (without or {}).items()}}


def test_claims_compare_the_best_graph_with_unimodal_models_of_what_remains_and_with_early_fusion():
    results = [
        _row("graph-gat", "graph", "graph-gat", 95.0, 0.0, {"a": 50.0, "b": 30.0}),
        _row("graph-gat+drop-out", "graph", "graph-gat", 92.0, 0.15, {"a": 70.0, "b": 40.0}),
        _row("graph-hgt+drop-out", "graph", "graph-hgt", 90.0, 0.15, {"a": 60.0, "b": 45.0}),
        _row("early-fusion+drop-out", "baseline", "early-fusion", 60.0, 0.15, {"a": 58.0, "b": 20.0}),
        _row("unimodal-a", "unimodal", "unimodal", 35.0),
        _row("unimodal-b", "unimodal", "unimodal", 65.0),
        _row("unimodal-c", "unimodal", "unimodal", 46.0, std=2.0),
    ]
    claims = {(c["claim"], c["removed"], c["graph"]): c for c in task_claims("t", {"results": results, "chance": 40})}
    above = claims["graph >= best unimodal of the rest", "a", "graph-gat+drop-out"]
    assert above["unimodal"] == "unimodal-b" and above["holds"] and not above["at_chance"]  # 70 >= 65, b remains
    # hgt is best without b; a and c remain: 45 < 46, by less than c's std of 2
    below = claims["graph >= best unimodal of the rest", "b", "graph-hgt+drop-out"]
    assert below["unimodal"] == "unimodal-c" and not below["holds"] and below["within_spread"]
    assert "within the seed spread" in format_claims([below]) and not below["at_chance"]
    # Without c, the best of the rest (b at 65) is above the chance of 40; with a chance of 70 it is not.
    at_chance = {(c["claim"], c["removed"]): c for c in task_claims("t", {"results": results, "chance": 70})}
    assert at_chance["graph >= best unimodal of the rest", "a"]["at_chance"]
    assert at_chance["graph loses less than early-fusion", "a"]["at_chance"]
    assert "predicts no better than chance" in format_claims([at_chance["graph above early-fusion", "a"]])
    loss = claims["graph loses less than early-fusion", "a", "graph-gat+drop-out"]
    assert loss["graph_loss"] == pytest.approx(22.0) and loss["reference_loss"] == pytest.approx(2.0)
    assert not loss["holds"]
    assert claims["graph above early-fusion", "b", "graph-hgt+drop-out"]["holds"]  # 45 > 20
    cost = claims["drop-out costs <= 2 points", None, "graph-gat+drop-out"]
    assert cost["cost"] == pytest.approx(3.0) and not cost["holds"]
    assert ("drop-out costs <= 2 points", None, "graph-hgt+drop-out") not in claims  # no hgt without drop-out


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_dropout_probability_is_checked_before_any_work(tmp_path, tiny_tasks, monkeypatch, value):
    monkeypatch.setattr(runner, "run_once", lambda *a, **k: pytest.fail("trained despite a bad --modality-dropout"))
    with pytest.raises(SystemExit, match="--modality-dropout must lie strictly between 0 and 1"):
        cli(["robustness", "--tasks", "_tiny", "--modality-dropout", value, "--out", str(tmp_path)])


def test_default_dropout_is_the_graph_models_own():
    from graphfuse.models import create_model
    from graphfuse.testing import tri_modal_builder

    model = create_model("graph-gat", builder=tri_modal_builder(), num_classes=2, hidden_channels=8)
    assert robustness.DEFAULT_DROPOUT == model.modality_dropout > 0


@pytest.mark.parametrize(("argv", "seeds", "tasks"), [
    ([], robustness.SEEDS, None),
    (["--quick"], robustness.QUICK_SEEDS, list(robustness.QUICK_TASKS)),
    (["--quick", "--seeds", "1", "--tasks", "synergy"], 1, ["synergy"]),
])
def test_quick_runs_fewer_seeds_on_the_tasks_a_single_modality_predicts(tmp_path, monkeypatch, argv, seeds, tasks):
    seen = {}
    monkeypatch.setattr(robustness.accuracy, "execute", lambda args, *a, **k: seen.update(vars(args)) or {"tasks": {}})
    assert cli(["robustness", "--out", str(tmp_path), *argv]) == 0
    assert seen["seeds"] == seeds and seen["tasks"] == tasks and seen["stem"] == "robustness"
