import json

import pytest
from tiny import TINY

from graphfuse.bench import accuracy, tune
from graphfuse.bench.__main__ import main as cli
from graphfuse.bench.accuracy import runner
from graphfuse.models import list_models


def test_grid_points_cover_the_grid_cheapest_first():
    points = tune.grid_points(12)
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points}) == 12
    assert {tuple(sorted(p)) for p in points} == {("epochs", "hidden", "lr")}
    costs = [(p["epochs"], p["hidden"], p["lr"]) for p in points]
    assert costs == sorted(costs)
    assert points[0] == {"lr": min(tune.GRID["lr"]), "hidden": min(tune.GRID["hidden"]), "epochs": 6}
    assert max(p["epochs"] for p in points) == 12  # never beyond the task's budget


def test_grid_epochs_are_fractions_of_the_budget_and_points_are_distinct():
    grid = {"lr": (1e-3,), "epochs": (0.5, 1.0)}
    assert tune.grid_points(1, grid) == [{"lr": 1e-3, "epochs": 1}]  # half of 1 epoch is still 1
    assert [p["epochs"] for p in tune.grid_points(10, grid)] == [5, 10]


def test_choose_takes_the_best_validation_score_and_the_cheapest_of_equals():
    trials = [{"lr": 1, "val": 50.0}, {"lr": 2, "val": 70.0}, {"lr": 3, "val": 70.0}, {"lr": 4, "val": None}]
    assert tune.choose(trials)["lr"] == 2
    assert tune.choose([{"lr": 1, "val": None, "error": "x"}]) is None


@pytest.fixture
def small_grid(monkeypatch):
    monkeypatch.setattr(tune, "GRID", {"lr": (1e-2,), "hidden": (8, 16), "epochs": (1 / 3, 2 / 3)})
    monkeypatch.setattr(tune, "PATIENCE", 1)


def test_tune_reports_every_trial_and_never_reads_the_test_split(tmp_path, tiny_tasks, small_grid, monkeypatch):
    def no_test(*args, **kwargs):
        raise AssertionError("tune scored the test split")

    monkeypatch.setattr(runner, "score_test", no_test)
    monkeypatch.setattr(runner, "score_missing", no_test)
    out = tmp_path / "tuned.json"
    code = cli(["tune", "--no-progress", "--jobs", "1", "--threads", "1", "--tasks", "_tiny", "--seeds", "2",
                "--methods", "graph-gat", "unimodal-image", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["grid"] == {"lr": [1e-2], "hidden": [8, 16], "epochs": [1 / 3, 2 / 3]} and report["failed"] == []
    assert report["epochs"] == {"_tiny": [1, 2]}  # of TINY's 3
    assert report["seeds"] == 2
    for method in ("graph-gat", "unimodal-image"):
        summary = report["tasks"]["_tiny"][method]
        assert len(summary["trials"]) == 4
        assert [(t["epochs"], t["hidden"]) for t in summary["trials"]] == [(1, 8), (1, 16), (2, 8), (2, 16)]
        for trial in summary["trials"]:
            assert len(trial["vals"]) == len(trial["epochs_run"]) == 2  # one per seed
            assert all(0 <= val <= 100 for val in trial["vals"])
            assert trial["val"] == pytest.approx(sum(trial["vals"]) / 2)
            assert all(run <= trial["epochs"] for run in trial["epochs_run"])
        best = max(summary["trials"], key=lambda t: t["val"])
        assert summary["val"] == best["val"]
        assert summary["chosen"] == {key: best[key] for key in ("lr", "hidden", "epochs")}


def test_accuracy_trains_each_method_with_its_chosen_settings(tmp_path, tiny_tasks):
    settings = {"tasks": {"_tiny": {"graph-gat": {"chosen": {"lr": 5e-3, "hidden": 8, "epochs": 2}, "val": 90.0}}}}
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    out = tmp_path / "report.json"
    code = cli(["accuracy", "--no-progress", "--jobs", "1", "--threads", "1", "--tasks", "_tiny", "--seeds", "1",
                "--methods", "graph-gat", "unimodal-text", "--settings", str(path), "--out", str(tmp_path / "o"),
                "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    training = report["config"]["training"]["_tiny"]
    assert {k: training["graph-gat"][k] for k in ("lr", "hidden", "epochs")} == {"lr": 5e-3, "hidden": 8, "epochs": 2}
    assert {k: training["unimodal-text"][k] for k in ("lr", "hidden", "epochs")} == {
        "lr": TINY.lr, "hidden": TINY.hidden, "epochs": TINY.epochs}  # not tuned: the task's settings
    rows = {row["method"]: row for row in report["tasks"]["_tiny"]["results"]}
    assert rows["graph-gat"]["settings"] == {"lr": 5e-3, "hidden": 8, "epochs": 2}
    assert rows["graph-gat"]["runs"][0]["epochs"] == 2
    assert report["config"]["settings"] == str(path)


def test_quick_runs_are_never_tuned(tiny_tasks):
    settings = {"_tiny": {"graph-gat": {"lr": 5e-3, "hidden": 8, "epochs": 2}}}
    assert accuracy.method_config("_tiny", "graph-gat", quick=False, settings=settings).hidden == 8
    assert accuracy.method_config("_tiny", "graph-gat", quick=True, settings=settings) == TINY
    assert accuracy.method_config("_tiny", "mult", quick=False, settings=settings) == TINY


@pytest.mark.parametrize("content, reason", [
    ("not json", "(JSONDecodeError: Expecting value"),
    (json.dumps([1, 2]), '(it holds no "tasks" object)'),
    (json.dumps({"tasks": {"_tiny": [1]}}), """("tasks" / '_tiny' is [1], not an object of methods)"""),
    (json.dumps({"tasks": {"_tiny": {"graph-gat": {"val": 1}}}}), """("tasks" / '_tiny' / 'graph-gat' / "chosen" is """
                                                                  "missing)"),
    (json.dumps({"tasks": {"_tiny": {"graph-gat": {"chosen": {"lr": "fast", "hidden": 8, "epochs": 2}}}}}),
     """("tasks" / '_tiny' / 'graph-gat' / "chosen" is {'lr': 'fast', 'hidden': 8, 'epochs': 2}, not a choice of a """
     "learning rate 'lr' > 0 and whole numbers 'hidden' and 'epochs' >= 1)"),
    (json.dumps({"tasks": {"_tiny": {"graph-gat": {"chosen": {"lr": 1e-3, "hidden": 8.5, "epochs": 2}}}}}),
     "'hidden': 8.5"),
])
def test_unreadable_settings_are_refused_before_training(tmp_path, tiny_tasks, monkeypatch, content, reason):
    path = tmp_path / "settings.json"
    path.write_text(content)
    monkeypatch.setattr(accuracy.cli, "run_plans", lambda *args, **kwargs: pytest.fail("training started"))
    with pytest.raises(SystemExit) as raised:
        cli(["accuracy", "--no-progress", "--jobs", "1", "--tasks", "_tiny", "--settings", str(path),
             "--out", str(tmp_path / "o")])
    assert raised.value.code == 2
    message = str(raised.value)
    assert message.startswith(f"error: --settings '{path}' is not a readable report of 'python -m graphfuse.bench "
                              f"tune' ")
    assert reason in message and message.endswith("; rerun tune, or pass --settings none")


def test_a_method_tune_chose_nothing_for_trains_with_the_tasks_settings(tmp_path, tiny_tasks, monkeypatch, caplog):
    settings = {"tasks": {"_tiny": {"graph-gat": {"chosen": None, "val": None, "trials": []},
                                    "graph-hgt": {"chosen": {"lr": 5e-3, "hidden": 8, "epochs": 2}, "val": 90.0}}}}
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    configs = {}

    def plans(args, chosen, tasks, patterns, started, config_of, *rest):
        configs.update({method.name: config_of("_tiny", method) for method in chosen["_tiny"]})
        return {"tasks": {}}

    monkeypatch.setattr(accuracy.cli, "run_plans", plans)
    assert cli(["accuracy", "--no-progress", "--jobs", "1", "--tasks", "_tiny", "--methods", "graph-*",
                "--settings", str(path), "--out", str(tmp_path / "o")]) == 0
    assert configs["graph-gat"] == TINY
    assert (configs["graph-hgt"].lr, configs["graph-hgt"].hidden, configs["graph-hgt"].epochs) == (5e-3, 8, 2)
    assert (f"--settings '{path}' holds no settings for _tiny / graph-gat (every trial of tune failed): it trains "
            "with the task's own settings") in caplog.text


def test_tune_arguments_are_checked(tmp_path, tiny_tasks):
    with pytest.raises(SystemExit, match="--quick settings are never tuned"):
        cli(["tune", "--quick", "--tasks", "_tiny", "--out", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit, match="drop --epochs"):
        cli(["tune", "--epochs", "3", "--tasks", "_tiny", "--out", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit, match="--out .* is a folder"):
        cli(["tune", "--tasks", "_tiny", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown tasks"):
        cli(["tune", "--tasks", "_nope", "--out", str(tmp_path / "t.json")])


def test_tune_takes_no_settings_it_would_not_read(tmp_path, tiny_tasks, capsys):
    """tune chooses the settings; --settings is what accuracy trains with."""
    with pytest.raises(SystemExit) as raised:
        cli(["tune", "--tasks", "_tiny", "--settings", str(tmp_path / "s.json"), "--out", str(tmp_path / "t.json")])
    assert raised.value.code == 2 and "unrecognized arguments: --settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["tune", "--help"])
    assert "[--settings SETTINGS]" not in capsys.readouterr().out  # (its description names accuracy's)
    with pytest.raises(SystemExit):
        cli(["accuracy", "--help"])
    assert "[--settings SETTINGS]" in capsys.readouterr().out


def test_shipped_settings_cover_every_method_of_the_default_run():
    """The accuracy benchmark trains each method of its default tasks with a point of the grid it was tuned on."""
    chosen = accuracy.load_settings(accuracy.TUNED_SETTINGS)
    methods = [*accuracy.GRAPH_METHODS, *list_models(family="baseline")]
    for task in accuracy.DEFAULT_TASKS:
        budget = accuracy.training_config(task).epochs
        assert set(methods) <= set(chosen[task]), (task, set(methods) - set(chosen[task]))
        assert any(method.startswith("unimodal-") for method in chosen[task])
        for method, point in chosen[task].items():
            assert point in tune.grid_points(budget), (task, method, point)
