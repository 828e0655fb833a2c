import json

import pytest

from graphfuse.bench import throughput
from graphfuse.bench.__main__ import main

TINY = throughput.Config(tokens=4, grid=2, frames=4, hidden=16, layers=2, heads=4, batch_size=3)


@pytest.mark.parametrize("method", ["graphfuse-gat", "dense-transformer"])
def test_training_step_runs(method):
    step = throughput.setup(method, TINY)
    step()
    step()


def test_available_explains_skips():
    assert "fixed edges" in throughput.available("pyg-hgt", throughput.Config(cross="knn"))
    big = throughput.Config(tokens=256, grid=16, frames=256)
    assert "GB" in throughput.available("pyg-heteroconv-gat", big)
    assert throughput.available("graphfuse-gat", big) is None


def test_sizes_cover_full_and_knn():
    configs = throughput.configs(TINY, sizes=True)
    assert [(c.n, c.cross) for c in configs[1:]] == [(n, cross) for n in throughput.SIZES
                                                       for cross in throughput.CROSS]
    assert all(c.grid ** 2 == c.tokens == c.frames for c in configs[1:])


def test_measure_reports_schema_and_ratios():
    rows = throughput.measure(TINY, ["graphfuse-gcn", "dense-transformer", "pyg-heteroconv-gcn"], rounds=1)
    assert [r["method"] for r in rows] == ["graphfuse-gcn", "dense-transformer", "pyg-heteroconv-gcn"]
    for row in rows:
        assert set(row) == {"method", "n", "cross", "samples_per_s", "peak_mb", "vs_dense_transformer",
                            "vs_pyg_heteroconv"}
        assert row["samples_per_s"] > 0 and row["peak_mb"] is not None
    transformer = rows[1]["samples_per_s"]
    assert rows[0]["vs_dense_transformer"] == pytest.approx(rows[0]["samples_per_s"] / transformer)
    assert rows[2]["vs_pyg_heteroconv"] == pytest.approx(1.0)
    assert "graphfuse-gcn" in throughput.format_table(rows)


def test_cli_rejects_unknown_methods():
    with pytest.raises(SystemExit, match="unknown methods"):
        main(["throughput", "--methods", "nope"])


def test_cli_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(throughput, "Config", lambda **kw: TINY.__class__(**{**TINY.__dict__, **kw,
                                                                               "tokens": 4, "grid": 2, "frames": 4,
                                                                               "batch_size": 3, "hidden": 16}))
    path = tmp_path / "out.json"
    assert main(["throughput", "--quick", "--methods", "graphfuse-gcn,dense-transformer", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["config"]["hidden"] == 16
    assert {r["method"] for r in report["results"]} == {"graphfuse-gcn", "dense-transformer"}
