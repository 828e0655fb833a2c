import inspect
import json

import pytest

from graphfuse.bench import ablation
from graphfuse.bench.__main__ import main as cli
from graphfuse.bench.accuracy import runner
from graphfuse.models import GraphFusionModel


def test_every_ablation_changes_real_options_of_the_default_model():
    names = [name for name, _ in ablation.ABLATIONS]
    assert names[0] == "default" and ablation.ABLATIONS[0][1] == {} and len(set(names)) == len(names)
    defaults = {name: p.default for name, p in inspect.signature(GraphFusionModel).parameters.items()}
    for name, options in ablation.ABLATIONS[1:]:
        assert options and set(options) <= set(defaults), name
        assert any(defaults[key] != value for key, value in options.items()), f"{name!r} changes nothing"


def test_ablation_runs_each_variant_in_order_with_the_model_options(tmp_path, tiny_tasks, monkeypatch):
    variants = (("default", {}), ("mean pooling", {"pool": "mean"}), ("no drop-out", {"modality_dropout": 0.0}))
    monkeypatch.setattr(ablation, "ABLATIONS", variants)
    built = []
    create = runner.create_model
    monkeypatch.setattr(runner, "create_model", lambda name, **kw: built.append((name, kw)) or create(name, **kw))
    out = tmp_path / "report.json"
    code = cli(["ablation", "--no-progress", "--jobs", "1", "--threads", "1", "--tasks", "_tiny", "--seeds", "1",
                "--out", str(tmp_path / "o"), "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    rows = report["tasks"]["_tiny"]["results"]
    assert [row["method"] for row in rows] == ["default", "mean pooling", "no drop-out"]  # not re-ranked
    assert all(row["family"] == "graph" and set(row["without"]) == {"text", "image", "audio"} for row in rows)
    assert [name for name, _ in built] == ["graph-gat"] * 3
    assert built[1][1]["pool"] == "mean" and "pool" not in built[0][1]
    assert built[2][1]["modality_dropout"] == 0.0
    assert (tmp_path / "o" / "ablation.md").is_file() and (tmp_path / "o" / "ablation.png").is_file()


def test_ablation_needs_a_graph_model(tmp_path, tiny_tasks):
    with pytest.raises(SystemExit, match="--model must be a graph model"):
        cli(["ablation", "--model", "mult", "--tasks", "_tiny", "--out", str(tmp_path)])
