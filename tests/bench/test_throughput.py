import json
from dataclasses import replace

import pytest
import torch

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
        assert set(row) == {"method", "n", "size", "cross", "mode", "samples_per_s", "peak_mb",
                            "vs_dense_transformer", "vs_pyg_heteroconv", "vs_fp32"}
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


def test_the_real_preset_is_the_issues_size_with_three_kinds_of_edges():
    base = throughput.Config(**throughput.REAL)
    configs = throughput.configs(base, sizes=False, preset="real")
    assert [c.cross for c in configs] == ["sparse", "knn", "full"]
    for config in configs:
        assert (config.tokens, config.grid ** 2, config.frames, config.batch_size) == (64, 196, 1000, 8)
        assert config.grid * config.patch_size == 224 and config.timed_text and config.size == "real"


def test_sparse_edges_join_each_word_to_the_frames_it_spans():
    config = throughput.Config(tokens=4, grid=2, frames=20, batch_size=1, cross="sparse", timed_text=True)
    builder = throughput.make_builder(config)
    graph = builder.build(throughput.make_samples(config, seed=0)[0])
    spans, times = graph["text"].time, graph["audio"].time
    expected = {(f, w) for w in range(4) for f in range(times.size(0))
                if times[f, 0] < spans[w, 1] and spans[w, 0] < times[f, 1]}
    assert set(map(tuple, graph["audio", "to", "text"].edge_index.t().tolist())) == expected
    assert all(len({w for f, w in expected if f == frame}) >= 1 for frame in range(times.size(0)))
    budget = throughput.SPARSE_BUDGET
    assert graph["audio", "to", "image"].edge_index.size(1) == 4 * min(budget, times.size(0))


def test_methods_that_cannot_run_are_listed_with_the_reason(monkeypatch):
    monkeypatch.setattr(throughput, "_probe_in_subprocess", lambda method, config: 1.0)  # measured above
    config = throughput.Config(tokens=4, grid=2, frames=4, hidden=16, batch_size=2, cross="knn")
    rows = throughput.measure(config, ["graphfuse-gcn", "pyg-heteroconv-gcn"], rounds=1)
    skipped = [r for r in rows if r.get("skipped")]
    assert [(r["method"], r["skipped"]) for r in skipped] == [("pyg-heteroconv-gcn", "fixed edges only")]
    assert "| pyg-heteroconv-gcn | 4 | knn | | not run: fixed edges only |" in throughput.format_table(rows)


def test_cli_real_preset_runs_every_kind_of_edges(tmp_path, monkeypatch):
    monkeypatch.setattr(throughput, "REAL", {"tokens": 4, "grid": 2, "patch_size": 4, "frames": 12, "batch_size": 2})
    monkeypatch.setattr(throughput, "_probe_in_subprocess", lambda method, config: 1.0)
    path = tmp_path / "real.json"
    assert main(["throughput", "--preset", "real", "--rounds", "1", "--hidden", "16",
                 "--methods", "graphfuse-gat,dense-transformer", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["config"]["preset"] == "real" and report["config"]["batch_size"] == 2
    assert sorted((r["cross"], r["method"]) for r in report["results"]) == sorted(
        (cross, method) for cross in ("sparse", "knn", "full") for method in ("graphfuse-gat", "dense-transformer"))
    assert {r["size"] for r in report["results"]} == {"real"}


def test_knn_update_is_the_callers_choice_and_recorded(tmp_path, monkeypatch, capsys):
    """k-NN edges before every block unless ``--knn-update forward`` asks for them once per step; the
    results say which."""
    knn = throughput.Config(tokens=4, grid=2, frames=4, hidden=16, batch_size=2, cross="knn")
    meta = throughput.metadata(throughput.make_builder(knn))
    assert throughput.GraphfuseFusion(knn, meta, "gat").encoder.knn_update == "block"
    forward = replace(knn, knn_update="forward")
    assert throughput.GraphfuseFusion(forward, meta, "gat").encoder.knn_update == "forward"
    throughput.setup("graphfuse-gat", forward)()
    monkeypatch.setattr(throughput, "_probe_in_subprocess", lambda method, config: 1.0)
    monkeypatch.setattr(throughput, "SIZES", (4,))
    path = tmp_path / "knn.json"
    assert main(["throughput", "--sizes", "--rounds", "1", "--hidden", "16", "--batch-size", "2", "--knn-update",
                 "forward", "--methods", "graphfuse-gat", "--json", str(path)]) == 0
    assert json.loads(path.read_text())["config"]["knn_update"] == "forward"
    assert "once per step, shared by the blocks (--knn-update forward)" in capsys.readouterr().out


def test_cli_refuses_two_sweeps_at_once():
    with pytest.raises(SystemExit, match="pick one"):
        main(["throughput", "--preset", "real", "--sizes"])


def test_modes_are_measured_side_by_side_against_fp32(monkeypatch):
    monkeypatch.setattr(throughput, "_probe_in_subprocess", lambda method, config: 1.0)
    rows = throughput.measure(TINY, ["graphfuse-gat", "dense-transformer"], rounds=1, modes=("fp32", "bf16"))
    assert sorted((r["method"], r["mode"]) for r in rows) == sorted(
        (m, mode) for m in ("graphfuse-gat", "dense-transformer") for mode in ("fp32", "bf16"))
    by = {(r["method"], r["mode"]): r for r in rows}
    assert by["graphfuse-gat", "fp32"]["vs_fp32"] == 1.0
    gat, transformer = by["graphfuse-gat", "bf16"], by["dense-transformer", "bf16"]
    assert gat["vs_fp32"] == pytest.approx(gat["samples_per_s"] / by["graphfuse-gat", "fp32"]["samples_per_s"])
    assert gat["vs_dense_transformer"] == pytest.approx(gat["samples_per_s"] / transformer["samples_per_s"])
    assert "| bf16 |" in throughput.format_table(rows)


def test_a_bf16_step_runs_the_model_in_bfloat16():
    step = throughput.setup("graphfuse-gat", throughput.Config(**{**TINY.__dict__, "mode": "bf16"}))
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(out.dtype) if isinstance(module, torch.nn.Linear) else None)
    try:
        step()
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.bfloat16}


def test_cli_rejects_unknown_modes():
    with pytest.raises(SystemExit, match="unknown modes"):
        main(["throughput", "--modes", "fp8"])


def test_conv_path_reaches_every_conv_and_is_recorded(tmp_path, monkeypatch):
    """``--conv-path fused`` keeps the fused kernels under torch.compile too; the results say which."""
    meta = throughput.metadata(throughput.make_builder(TINY))
    for path in ("auto", "fused", "reference"):
        fusion = throughput.GraphfuseFusion(replace(TINY, conv_path=path), meta, "gat")
        convs = [m for m in fusion.modules() if hasattr(m, "runs_fused")]
        assert convs and {conv.path for conv in convs} == {path}
    monkeypatch.setattr(throughput, "_probe_in_subprocess", lambda method, config: 1.0)
    out = tmp_path / "paths.json"
    assert main(["throughput", "--rounds", "1", "--hidden", "16", "--batch-size", "2", "--conv-path",
                 "fused", "--methods", "graphfuse-gcn", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["conv_path"] == "fused"
    with pytest.raises(SystemExit):
        main(["throughput", "--conv-path", "sparse"])


@pytest.fixture
def measured(monkeypatch):
    """Records the configs and rounds ``main`` would measure, measuring nothing."""
    calls = []
    monkeypatch.setattr(throughput, "configure_allocator", lambda allocator: allocator)
    monkeypatch.setattr(throughput, "measure", lambda config, methods, rounds, modes: calls.append((config, rounds))
                        or [])
    return calls


@pytest.mark.parametrize("argv, split", [
    (["--methods", "graphfuse-gat", "--hidden", "130"], "--hidden 130 does not split over --heads 4 in graphfuse-gat"),
    (["--methods", "graphfuse-hgt", "--heads", "3"], "--hidden 128 does not split over --heads 3 in graphfuse-hgt"),
    (["--methods", "dense-transformer,graphfuse-gcn", "--heads", "3"],
     "--hidden 128 does not split over --heads 3 in dense-transformer;"),
    (["--heads", "3"], "--hidden 128 does not split over --heads 3 in graphfuse-gat, graphfuse-hgt, "
                       "pyg-heteroconv-gat, pyg-hgt, dgl-gat, dense-transformer;"),
])
def test_heads_that_do_not_divide_hidden_are_refused_before_any_work(measured, argv, split):
    with pytest.raises(SystemExit, match=f"error: {split}") as raised:
        main(["throughput", *argv])
    assert raised.value.code == 2 and "pick --heads that divides --hidden" in str(raised.value)
    assert not measured


def test_methods_without_heads_take_any_heads(measured):
    assert main(["throughput", "--methods", "graphfuse-gcn,graphfuse-gated,pyg-heteroconv-gcn,early-fusion-mlp",
                 "--heads", "3"]) == 0
    assert len(measured) == 1


@pytest.mark.parametrize("method", throughput.METHODS)
def test_split_heads_lists_the_methods_that_split_hidden_over_heads(method):
    if throughput.COMPARISONS.get(method) is not None and throughput.COMPARISONS[method].requires_dgl:
        pytest.importorskip("dgl")
    indivisible = replace(TINY, hidden=6, heads=4)
    if method in throughput.SPLIT_HEADS:
        with pytest.raises(ValueError, match="6"):
            throughput.setup(method, indivisible)
    else:
        throughput.setup(method, indivisible)


@pytest.mark.parametrize("argv, conflicts", [
    (["--sizes"], "--sizes"), (["--rounds", "5"], "--rounds"), (["--sizes", "--rounds", "3"], "--sizes and --rounds"),
])
def test_quick_refuses_the_options_it_would_override(measured, argv, conflicts):
    with pytest.raises(SystemExit, match=f"error: --quick measures the default config in 3 rounds; drop {conflicts}, "
                                         f"or --quick") as raised:
        main(["throughput", "--quick", *argv])
    assert raised.value.code == 2 and not measured


def test_quick_measures_the_default_config_in_three_rounds_and_rounds_otherwise(measured):
    assert main(["throughput", "--quick", "--methods", "graphfuse-gcn"]) == 0
    assert [(config.size, rounds) for config, rounds in measured] == [("default", 3)]
    measured.clear()
    assert main(["throughput", "--methods", "graphfuse-gcn"]) == 0
    assert [rounds for _, rounds in measured] == [throughput.ROUNDS]
    measured.clear()
    assert main(["throughput", "--methods", "graphfuse-gcn", "--rounds", "2", "--sizes"]) == 0
    assert {rounds for _, rounds in measured} == {2} and len(measured) == 1 + len(throughput.SIZES) * 2
