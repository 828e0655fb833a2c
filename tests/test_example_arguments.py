"""The example and benchmark scripts refuse a bad option as argparse does, before any work starts: exit
status 2 and one ``error:`` line that names the option and what to pass instead."""
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What the scripts call to do their work; a test replaces each with a function raising WorkStarted.
WORK = ("GraphBuilder", "make_data", "featurize_dataset", "create_model", "Trainer", "measure")


class WorkStarted(Exception):
    """Raised by a replaced work function: the options were accepted and the work began."""


def refuse_work(*args, **kwargs):
    raise WorkStarted


@pytest.fixture
def script(monkeypatch):
    """``script("examples/classification.py")``: the script loaded as a module whose work raises
    :class:`WorkStarted`; the modules it loaded and ``sys.path`` are restored afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # the scripts import each other from there
    before = set(sys.modules)

    def load(path: str) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(f"script_{Path(path).stem}", ROOT / path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name in WORK:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse_work)
        return module

    yield load
    for name in set(sys.modules) - before:
        if name in ("classification", "retrieval"):  # imported by pretrained_encoders.py and reranker.py
            del sys.modules[name]


@pytest.fixture
def refused(script, capsys):
    """``refused(path, *argv)``: the error line of the script's ``main(argv)``, asserting exit status 2
    and that no work started."""

    def run(path: str, *argv: str) -> str:
        main = script(path).main
        with pytest.raises(SystemExit) as exit_info:
            main(list(argv))
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[0].startswith("usage:") and lines[-1].count("error: ") == 1, lines
        return lines[-1].split("error: ", 1)[1]

    return run


CLASSIFICATION, RETRIEVAL, EXPLAIN, PRETRAINED = (f"examples/{name}.py" for name in (
    "classification", "retrieval", "explain", "pretrained_encoders"))
RERANKER, LONG_RECORDING = "benchmarks/reranker.py", "benchmarks/long_recording.py"


@pytest.mark.parametrize("path, argv, message", [
    (CLASSIFICATION, ["--model", "graph-gta"], "argument --model: invalid choice: 'graph-gta' (choose from"),
    (CLASSIFICATION, ["--model", "unimodal"], "argument --model: invalid choice: 'unimodal'"),
    (RETRIEVAL, ["--model", "graph-gta"], "argument --model: invalid choice: 'graph-gta'"),
    (RETRIEVAL, ["--model", "early-fusion"], "argument --model: invalid choice: 'early-fusion'"),
    (RERANKER, ["--model", "graph-gta"], "argument --model: invalid choice: 'graph-gta'"),
    (RERANKER, ["--model", "early-fusion"], "argument --model: invalid choice: 'early-fusion'"),
    (RERANKER, ["--rerank-conv", "bogus"], "argument --rerank-conv: invalid choice: 'bogus' (choose from 'gat', "),
    (LONG_RECORDING, ["--models", "graph-gta"], "unknown models ['graph-gta'] in --models; choose from graph-gat"),
    (LONG_RECORDING, ["--models", "graph-gcn,unimodal"], "unknown models ['unimodal'] in --models"),
    (LONG_RECORDING, ["--models", "graph-gcn,"], "--models 'graph-gcn,' has an empty name (a stray comma?)"),
])
def test_a_model_or_conv_the_script_cannot_build_is_refused(refused, path, argv, message):
    assert message in refused(path, *argv)


def test_the_model_choices_are_what_each_script_can_build(refused):
    assert "'transformer-fusion'" in refused(CLASSIFICATION, "--model", "x")  # baselines classify too
    assert "'unimodal'" not in refused(CLASSIFICATION, "--model", "x")  # it needs the modality it reads
    for path in (RETRIEVAL, RERANKER):  # a dual encoder with a re-ranker: the graph models
        assert refused(path, "--model", "x").endswith(
            "(choose from 'graph-gat', 'graph-gat-knn', 'graph-gated', 'graph-gcn', 'graph-hgt')")


@pytest.mark.parametrize("path", [LONG_RECORDING, RERANKER])
@pytest.mark.parametrize("json_path, message", [
    ("{tmp}", "--json '{tmp}' is a folder; name a file in it, e.g. '{tmp}/report.json'"),
    ("/proc/x.json", "--json folder '/proc' is not a folder this process can write in"),
    ("{tmp}/a-file/out.json", "--json folder '{tmp}/a-file' is a file, not a folder"),
])
def test_a_json_path_that_cannot_be_written_is_refused_before_any_work(refused, tmp_path, path, json_path,
                                                                       message):
    (tmp_path / "a-file").write_text("")
    error = refused(path, "--json", json_path.format(tmp=tmp_path))
    assert error.startswith(message.format(tmp=tmp_path)), error


def test_a_json_path_in_a_missing_folder_is_accepted_and_its_folder_made(script, tmp_path):
    with pytest.raises(WorkStarted):
        script(RERANKER).main(["--json", str(tmp_path / "missing" / "dir" / "out.json")])
    assert (tmp_path / "missing" / "dir").is_dir()


@pytest.mark.parametrize("path, argv, message", [
    (CLASSIFICATION, ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (CLASSIFICATION, ["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (CLASSIFICATION, ["--train-size", "0"], "argument --train-size: must be at least 1, got 0"),
    (CLASSIFICATION, ["--train-size", "-5"], "argument --train-size: must be at least 1, got -5"),
    (CLASSIFICATION, ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (CLASSIFICATION, ["--test-size", "1"], "argument --test-size: must be at least 2, got 1"),  # validates on 0
    (RETRIEVAL, ["--rerank-k", "0"], "argument --rerank-k: must be at least 1, got 0"),
    (RETRIEVAL, ["--rerank-k", "-2"], "argument --rerank-k: must be at least 1, got -2"),
    (RERANKER, ["--k", "0"], "argument --k: must be at least 1, got 0"),
    (RERANKER, ["--k", "-3"], "argument --k: must be at least 1, got -3"),
    (RERANKER, ["--k", "1000"], "--k 1000 is more than the 256 gallery images it ranks; choose at most 256"),
    (RERANKER, ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (LONG_RECORDING, ["--frames", "0"], "argument --frames: must be at least 1, got 0"),
    (LONG_RECORDING, ["--frames", "-5"], "argument --frames: must be at least 1, got -5"),
    (EXPLAIN, ["--explain", "0"], "argument --explain: must be at least 1, got 0"),
    (EXPLAIN, ["--explain", "-1"], "argument --explain: must be at least 1, got -1"),
    (EXPLAIN, ["--explain", "257"], "--explain 257 is more than the 256 test samples; choose at most 256"),
    (PRETRAINED, ["--predict-size", "0"], "argument --predict-size: must be at least 1, got 0"),
    (PRETRAINED, ["--test-size", "1"], "argument --test-size: must be at least 2, got 1"),
    (CLASSIFICATION, ["--epochs", "ten"], "argument --epochs: invalid integer value: 'ten'"),
])
def test_a_number_out_of_range_is_refused(refused, path, argv, message):
    assert refused(path, *argv) == message


@pytest.mark.parametrize("option", ["--train-size", "--test-size"])
def test_retrieval_refuses_more_samples_than_distinct_layouts(refused, option):
    assert refused(RETRIEVAL, option, "20000") == (f"{option} 20000 is more than the 12650 distinct layouts (4 lit "
                                                    f"cells of 25) it can draw; choose at most 12650")


def test_retrieval_accepts_every_distinct_layout(script):
    with pytest.raises(WorkStarted):
        script(RETRIEVAL).main(["--train-size", "12650"])


def test_retrieval_with_too_many_samples_exits_at_once_in_a_fresh_process():
    run = subprocess.run([sys.executable, str(ROOT / RETRIEVAL), "--train-size", "20000"], capture_output=True,
                         text=True, timeout=120)  # it drew layouts forever
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("retrieval.py: error: --train-size 20000 is more than")


def test_long_recording_takes_models_separated_by_commas_and_spaces(script, monkeypatch):
    module = script(LONG_RECORDING)
    measured = []

    def run(command, **kwargs):
        measured.append(command[command.index("--models") + 1])
        return subprocess.CompletedProcess(command, 0, stdout=json.dumps({"model": measured[-1]}), stderr="")

    monkeypatch.setattr(module, "subprocess", types.SimpleNamespace(run=run))
    report = module.main(["--models", "graph-gcn,graph-gat", "graph-hgt", "--frames", "10"])
    assert measured == ["graph-gcn", "graph-gat", "graph-hgt"]
    assert [record["model"] for record in report["runs"]] == measured


@pytest.mark.parametrize("out, message", [
    ("/proc/x", "--out '/proc/x' is not a folder this process can write in"),
    ("{tmp}/a-file", "--out '{tmp}/a-file' is a file, not a folder; pass a folder"),
])
def test_explain_refuses_an_out_folder_it_cannot_write_before_training(refused, tmp_path, out, message):
    (tmp_path / "a-file").write_text("")
    error = refused(EXPLAIN, "--out", out.format(tmp=tmp_path))
    assert error.startswith(message.format(tmp=tmp_path)), error


@pytest.fixture
def saved_pipeline(tmp_path) -> Path:
    """A folder that looks like a saved pipeline to the example's check."""
    folder = tmp_path / "pipeline"
    folder.mkdir()
    (folder / "pipeline.json").write_text("{}")
    return folder


def test_pretrained_encoders_refuses_to_replace_a_saved_pipeline_without_overwrite(refused, saved_pipeline):
    assert refused(PRETRAINED, "--out", str(saved_pipeline)) == (
        f"--out '{saved_pipeline}' already holds a saved pipeline; pass --overwrite to replace it, or choose "
        f"another folder")
    assert [path.name for path in saved_pipeline.iterdir()] == ["pipeline.json"]


def test_pretrained_encoders_replaces_a_saved_pipeline_with_overwrite(script, saved_pipeline):
    with pytest.raises(WorkStarted):
        script(PRETRAINED).main(["--out", str(saved_pipeline), "--overwrite"])


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_pretrained_encoders_never_replaces_a_folder_of_other_files(refused, tmp_path, overwrite):
    (tmp_path / "notes.txt").write_text("mine")
    assert refused(PRETRAINED, "--out", str(tmp_path), *overwrite) == (
        f"--out '{tmp_path}' holds other files (no pipeline.json), which saving would replace; choose a new or "
        f"empty folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_pretrained_encoders_refuses_an_out_that_is_a_file(refused, tmp_path):
    (tmp_path / "a-file").write_text("")
    assert refused(PRETRAINED, "--out", str(tmp_path / "a-file")) == (
        f"--out '{tmp_path / 'a-file'}' is a file; choose a new or empty folder for the pipeline")


@pytest.mark.parametrize("path, argv", [
    (CLASSIFICATION, []), (RETRIEVAL, []), (RERANKER, []),  # pretrained_encoders.py: with --out below
    (CLASSIFICATION, ["--model", "transformer-fusion", "--test-size", "2", "--seed", "0"]),
    (RETRIEVAL, ["--model", "graph-hgt", "--rerank-k", "256"]),
    (RERANKER, ["--rerank-conv", "shared", "--k", "256"]),
])
def test_the_default_and_documented_options_start_the_work(script, path, argv):
    with pytest.raises(WorkStarted):
        script(path).main(argv)


def test_explain_with_its_documented_options_starts_the_work(script, tmp_path):
    with pytest.raises(WorkStarted):
        script(EXPLAIN).main(["--out", str(tmp_path / "pictures"), "--explain", "256"])
    assert (tmp_path / "pictures").is_dir()
