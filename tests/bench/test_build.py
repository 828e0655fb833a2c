import json
import re

import pytest
import torch

from graphfuse.bench import build
from graphfuse.bench.__main__ import main
from graphfuse.datasets import synthetic_samples
from graphfuse.testing import requires_dgl

SMALL = dict(batch_size=3, tokens=5, grid=2, frames=4, rounds=1, allocator="default")


def test_run_reports_every_method_with_the_documented_schema():
    report = build.run(methods=("graphfuse", "pyg"), **SMALL)
    assert [r["method"] for r in report["results"]] == ["graphfuse", "pyg"]
    for result in report["results"]:
        assert result["samples_per_s"] > 0
        assert result["us_per_sample"] == pytest.approx(1e6 / result["samples_per_s"])
    by_method = {r["method"]: r["samples_per_s"] for r in report["results"]}
    assert report["speedup_vs_pyg"] == pytest.approx(by_method["graphfuse"] / by_method["pyg"])
    assert report["config"]["nodes_per_sample"] == 5 + 4 + 4
    assert report["config"]["edges_per_sample"] == 8 + 8 + 6 + 2 * (5 * 4 + 5 * 4 + 4 * 4)
    assert report["featurization"]["samples_per_s"] > 0
    assert "pyg" in build.format_table(report) and "speedup_vs_pyg" in build.format_table(report)


@pytest.mark.parametrize("cross", ["strided", "random"])
def test_sparse_cross_edges(cross):
    report = build.run(methods=("graphfuse",), cross=cross, **SMALL)
    assert report["config"]["cross"] == cross and report["speedup_vs_pyg"] is None


def featurized_batch(size):
    builder = build.make_builder(patch_size=4, channels=3, cross="full")
    return builder, [builder.featurize(s) for s in synthetic_samples(size, tokens=4, grid=2, frames=5)]


def test_check_same_batch_notices_a_difference():
    builder, node_sets = featurized_batch(2)
    reference = build.pyg_batch(builder, node_sets)
    ours = builder.collate(node_sets)
    build.check_same_batch(ours, reference)
    ours["image", "to", "text"].edge_index[0, 0] += 1
    with pytest.raises(RuntimeError, match=r"differs from Batch.from_data_list: \(\('image', 'to', 'text'\), "
                                           r"'edge_index'\) differs"):
        build.check_same_batch(ours, reference)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match=r"Unknown methods \['networkx'\]"):
        build.run(methods=("networkx",), **SMALL)


def test_cli_writes_the_json_document(tmp_path, capsys):
    path = tmp_path / "build.json"
    assert main(["build", "--quick", "--batch-size", "2", "--tokens", "4", "--grid", "2", "--frames", "3",
                 "--methods", "graphfuse,pyg", "--allocator", "default", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert set(document) >= {"config", "results", "speedup_vs_pyg"}
    assert document["config"]["batch_size"] == 2 and document["config"]["rounds"] == 5
    assert {r["method"] for r in document["results"]} == {"graphfuse", "pyg"}
    assert "speedup_vs_pyg" in capsys.readouterr().out


def test_cli_refuses_a_json_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="--json folder .* is a file, not a folder") as raised:
        main(["build", "--json", str(tmp_path / "file" / "out.json")])
    assert raised.value.code == 2


@requires_dgl
def test_dgl_batch_holds_the_same_graph():
    builder, node_sets = featurized_batch(3)
    ours = builder.collate(node_sets)
    graph = build.dgl_batch(builder, node_sets)
    for node_type in ours.node_types:
        assert graph.num_nodes(node_type) == ours[node_type].num_nodes
        assert torch.equal(graph.nodes[node_type].data["x"], ours[node_type].x)
    for edge_type in ours.edge_types:
        src, dst = graph.edges(etype=edge_type)
        assert torch.equal(torch.stack([src, dst]), ours[edge_type].edge_index)
    report = build.run(methods=("graphfuse", "pyg", "dgl"), **SMALL)
    assert [r["method"] for r in report["results"]] == ["graphfuse", "pyg", "dgl"]


# --from-raw ---------------------------------------------------------------------------------------

def test_from_raw_reports_batched_per_sample_and_pyg_at_each_size(monkeypatch):
    monkeypatch.setattr(build, "REAL_SIZE", {"tokens": 6, "grid": 2, "patch_size": 8, "frames": 7})
    report = build.run_from_raw(batch_size=3, tokens=5, grid=2, frames=4, rounds=1, allocator="default")
    assert list(report["sizes"]) == ["default", "real"]
    default, real = report["sizes"]["default"], report["sizes"]["real"]
    assert default["config"]["cross"] == "full" and real["config"]["cross"] == build.REAL_CROSS
    assert real["config"]["nodes_per_sample"] == 6 + 4 + 7 and real["config"]["patch_size"] == 8
    for measured in (default, real):
        assert [r["method"] for r in measured["results"]] == ["batched", "per-sample", "pyg"]
        by_method = {r["method"]: r["samples_per_s"] for r in measured["results"]}
        assert measured["speedup_vs_pyg"] == pytest.approx(by_method["batched"] / by_method["pyg"])
        assert measured["speedup_vs_per_sample"] == pytest.approx(by_method["batched"] / by_method["per-sample"])
        featurization = measured["featurization"]
        assert featurization["speedup"] == pytest.approx(
            featurization["per_sample_us_per_sample"] / featurization["batched_us_per_sample"])
    assert report["featurization_speedup"] == {size: report["sizes"][size]["featurization"]["speedup"]
                                               for size in ("default", "real")}
    table = build.format_raw_tables(report)
    assert "raw samples -> batch (real size)" in table and "speedup_vs_pyg (raw samples -> batch)" in table


def test_from_raw_one_size_some_methods_and_a_given_cross():
    report = build.run_from_raw(batch_size=2, sizes=("default",), tokens=4, grid=2, frames=3, cross="random",
                                rounds=1, methods=("batched", "per-sample"), allocator="default")
    measured = report["sizes"]["default"]
    assert list(report["sizes"]) == ["default"] and measured["config"]["cross"] == "random"
    assert measured["speedup_vs_pyg"] is None and measured["speedup_vs_per_sample"] > 0
    assert "speedup_vs_pyg" not in build.format_raw_tables(report)


def test_cli_from_raw_writes_the_json_document(tmp_path, capsys):
    path = tmp_path / "raw.json"
    assert main(["build", "--from-raw", "--sizes", "default", "--quick", "--batch-size", "2", "--tokens", "4",
                 "--grid", "2", "--frames", "3", "--allocator", "default", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert set(document) >= {"config", "sizes", "featurization_speedup", "speedup_vs_pyg"}
    assert document["config"]["rounds"] == 5 and list(document["sizes"]) == ["default"]
    assert "featurization_speedup: default" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--from-raw", "--methods", "graphfuse"], r"unknown methods \['graphfuse'\] in --methods; choose from "
                                                r"batched, per-sample, pyg"),
    (["--from-raw", "--sizes", "default,huge"], r"unknown sizes \['huge'\] in --sizes; choose from default, real"),
    (["--from-raw", "--sizes", ""], "--sizes is empty"),
    (["--methods", ""], "--methods is empty"),
    (["--sizes", "real"], "--sizes applies to --from-raw only"),
    (["--methods", "batched"], r"unknown methods \['batched'\] in --methods; choose from graphfuse, pyg, dgl"),
    (["--from-raw", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--from-raw", "--cross", "dense"], "invalid choice: 'dense'"),
    (["--quick", "--rounds", "3"], r"error: --quick measures 5 rounds; drop --rounds, or --quick"),
    (["--from-raw", "--quick", "--rounds", "3"], r"error: --quick measures 5 rounds; drop --rounds, or --quick"),
])
def test_cli_refuses_bad_options_before_any_work(argv, match, monkeypatch, capsys):
    def no_work(*args, **kwargs):
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(build, "run_from_raw", no_work)
    monkeypatch.setattr(build, "run", no_work)
    with pytest.raises(SystemExit) as raised:
        main(["build", *argv])
    assert raised.value.code == 2
    assert re.search(match, f"{raised.value}{capsys.readouterr().err}")


def test_dgl_alone_where_it_is_not_importable_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setattr(build, "dgl_importable", lambda: False)
    monkeypatch.setattr(build, "run", lambda **kwargs: pytest.fail("the benchmark ran"))
    for methods in ("dgl", "dgl,dgl"):
        with pytest.raises(SystemExit) as raised:
            main(["build", "--methods", methods])
        assert raised.value.code == 2
        assert str(raised.value) == ("error: --methods dgl needs DGL, which is not importable here; install the "
                                     "extra: pip install 'graphfuse[dgl]' (or measure graphfuse,pyg)")


def test_dgl_beside_other_methods_is_skipped_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(build, "dgl_importable", lambda: False)
    report = build.run(methods=("graphfuse", "dgl"), **SMALL)
    assert [r["method"] for r in report["results"]] == ["graphfuse"]
    assert "the 'dgl' method is skipped (install graphfuse[dgl])" in caplog.text


def test_a_method_named_twice_is_measured_once(capsys):
    assert main(["build", "--quick", "--batch-size", "2", "--tokens", "4", "--grid", "2", "--frames", "3",
                 "--methods", "graphfuse,pyg,graphfuse", "--allocator", "default"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith(("graphfuse ", "pyg "))]
    assert rows == ["graphfuse", "pyg"]
