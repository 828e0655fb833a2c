import json

import pytest
import torch

from graphfuse.bench import throughput
from graphfuse.bench.__main__ import main
from graphfuse.bench.baselines import BASELINES, mean_per_sample
from graphfuse.datasets import synthetic_samples
from graphfuse.testing import requires_dgl

TINY = throughput.Config(tokens=4, grid=2, frames=4, hidden=16, layers=2, heads=4, batch_size=3)


@pytest.fixture(scope="module")
def tiny_batch():
    builder = throughput.make_builder(TINY)
    samples = synthetic_samples(3, tokens=4, grid=2, patch_size=4, frames=4, seed=1)
    del samples[1]["audio"]
    return builder, builder.collate([builder.featurize(s) for s in samples])


def _features(batch, hidden=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {t: torch.randn(batch[t].num_nodes, hidden, generator=generator) for t in batch.node_types}


def test_mean_per_sample_matches_a_loop(tiny_batch):
    _, batch = tiny_batch
    h = _features(batch)
    out = mean_per_sample(h, batch.batch_dict, batch.num_graphs)
    for sample in range(batch.num_graphs):
        rows = torch.cat([h[t][batch[t].batch == sample] for t in h])
        torch.testing.assert_close(out[sample], rows.mean(0))


def _check_baseline(name, batch):
    meta = throughput.metadata(throughput.make_builder(TINY))
    baseline = BASELINES[name]
    torch.manual_seed(0)
    fusion = baseline.build(meta, 16, 2, 4)
    graph = baseline.prepare(batch)
    h = {k: v.requires_grad_() for k, v in _features(batch).items()}
    out = fusion(h, graph)
    assert out.shape == (batch.num_graphs, 16)
    out.sum().backward()
    assert all(torch.isfinite(v.grad).all() for v in h.values())
    # Perturbing sample 2 leaves samples 0 and 1 unchanged.
    perturbed = _features(batch)
    for t in perturbed:
        perturbed[t][batch[t].batch == 2] += 1.0
    with torch.no_grad():
        before, after = fusion(_features(batch), graph), fusion(perturbed, graph)
    torch.testing.assert_close(before[:2], after[:2])
    assert not torch.allclose(before[2], after[2])


@pytest.mark.parametrize("name", [n for n, b in BASELINES.items() if not b.requires_dgl])
def test_baselines_shape_gradient_and_no_leakage(name, tiny_batch):
    _check_baseline(name, tiny_batch[1])


@pytest.mark.dgl
@requires_dgl
@pytest.mark.parametrize("name", [n for n, b in BASELINES.items() if b.requires_dgl])
def test_dgl_baselines(name, tiny_batch):
    _check_baseline(name, tiny_batch[1])


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
