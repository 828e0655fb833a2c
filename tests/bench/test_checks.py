"""Every option of every ``python -m graphfuse.bench`` command is checked before any work starts:
output paths, whole numbers and lists of names."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from graphfuse.bench import build, throughput, tune
from graphfuse.bench.__main__ import main, parse_args
from graphfuse.bench.accuracy import cli as accuracy_cli
from graphfuse.bench.checks import check_writable_folder, names_of

COMMANDS = ["accuracy", "ablation", "tune", "build", "throughput"]


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if any command gets as far as loading a task or measuring anything."""

    def fail(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(accuracy_cli, "load_tasks", fail)
    monkeypatch.setattr(tune, "load_tasks", fail)
    monkeypatch.setattr(build, "run", fail)
    monkeypatch.setattr(throughput, "measure", fail)
    monkeypatch.setattr(throughput, "configure_allocator", fail)


def refused(argv, message):
    with pytest.raises(SystemExit, match=message) as raised:
        main(argv)
    assert raised.value.code == 2
    return raised.value


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").write_text("")
    except OSError:
        pass
    else:
        folder.chmod(0o700)
        pytest.skip("this process can write to a read-only folder (root?)")
    yield folder
    folder.chmod(0o700)


def out_argv(command, path):
    return [command, "--tasks", "_tiny", "--out", str(path)]


@pytest.mark.parametrize("command", ["accuracy", "ablation"])
def test_read_only_out_folder_is_refused_before_any_task_loads(tiny_tasks, no_work, read_only, command):
    refused(out_argv(command, read_only / "results"), "--out folder .* is not a folder this process can write in")
    refused(out_argv(command, read_only), "--out folder .* is not a folder this process can write in")


@pytest.mark.parametrize("command", ["accuracy", "ablation"])
def test_out_folder_that_is_a_file_is_refused(tmp_path, tiny_tasks, no_work, command):
    (tmp_path / "file").write_text("")
    refused(out_argv(command, tmp_path / "file"), "--out folder '.*file' is a file, not a folder")
    refused(out_argv(command, tmp_path / "file" / "below"),
            "--out folder .* is not a folder this process can write in")


def test_tune_out_file_is_checked(tmp_path, tiny_tasks, no_work, read_only):
    refused(out_argv("tune", read_only / "tuned.json"), "--out folder .* is not a folder this process can write in")
    refused(out_argv("tune", tmp_path), "--out .* is a folder")


@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_json_folder_is_refused_before_any_work(tmp_path, tiny_tasks, no_work, read_only, command):
    out = tmp_path / "out" / ("tuned.json" if command == "tune" else "")
    base = out_argv(command, out) if command in ("accuracy", "ablation", "tune") else [command]
    refused([*base, "--json", str(read_only / "report.json")],
            "--json folder .* is not a folder this process can write in")


@pytest.mark.parametrize("command", COMMANDS)
def test_json_path_that_is_a_folder_or_under_a_file_is_refused(tmp_path, tiny_tasks, no_work, command):
    out = tmp_path / "out" / ("tuned.json" if command == "tune" else "")
    base = out_argv(command, out) if command in ("accuracy", "ablation", "tune") else [command]
    refused([*base, "--json", str(tmp_path)], "--json .* is a folder; name a file in it")
    (tmp_path / "file").write_text("")
    refused([*base, "--json", str(tmp_path / "file" / "report.json")], "--json folder .* is a file, not a folder")


def test_missing_output_folders_are_created(tmp_path):
    check_writable_folder("--out", tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not os.listdir(tmp_path / "a" / "b")  # the probe is gone


@pytest.mark.parametrize("command, option", [
    *((command, option) for command in ("accuracy", "ablation") for option in ("--seeds", "--epochs", "--threads",
                                                                              "--jobs")),
    ("tune", "--seeds"), ("tune", "--jobs"), ("tune", "--threads"),
    *(("build", option) for option in ("--batch-size", "--tokens", "--grid", "--patch-size", "--channels",
                                       "--frames", "--rounds", "--threads")),
    *(("throughput", option) for option in ("--batch-size", "--hidden", "--layers", "--heads", "--rounds",
                                            "--threads")),
])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_whole_number_options_must_be_positive(tmp_path, tiny_tasks, no_work, command, option, value):
    refused([command, option, value], f"error: {option} must be at least 1, got {value}")


@pytest.mark.parametrize("command", ["build", "throughput"])
@pytest.mark.parametrize("methods, message", [
    (",", "--methods is empty; name at least one; choose from"),
    ("", "--methods is empty"),
    ("pyg,,graphfuse", "has an empty name"),
    ("nope", r"unknown methods \['nope'\] in --methods; choose from"),
])
def test_method_lists_are_checked(no_work, command, methods, message):
    error = refused([command, "--methods", methods], message)
    if "choose from" in message:
        choices = build.METHODS if command == "build" else throughput.METHODS
        assert all(choice in str(error) for choice in choices)


@pytest.mark.parametrize("command", ["accuracy", "ablation", "tune"])
@pytest.mark.parametrize("argv, message", [
    (["--tasks", ","], "--tasks is empty"),
    (["--tasks", "_tiny,"], "--tasks '_tiny,' has an empty name"),
    (["--tasks", "_nope"], r"unknown tasks \['_nope'\] in --tasks; choose from .*_tiny"),
    (["--tasks", "_tiny", "--methods", ","], "--methods is empty"),
    (["--tasks", "_tiny", "--methods", "graph-*,"], "has an empty name"),
])
def test_task_and_method_lists_are_checked(tmp_path, tiny_tasks, no_work, command, argv, message):
    out = tmp_path / ("t.json" if command == "tune" else "out")
    refused([command, "--out", str(out), *argv], message)


def test_throughput_device_is_checked(no_work):
    refused(["throughput", "--device", "gpu"], "--device must be cpu, cuda or cuda:N")


def test_names_of_splits_commas_and_spaces():
    assert names_of("--x", ["a,b", "c"]) == ["a", "b", "c"]
    assert names_of("--x", "a,b", ("a", "b")) == ["a", "b"]


def test_names_of_keeps_each_name_once_in_the_order_first_given():
    assert names_of("--x", ["b,a", "b", "c,a"]) == ["b", "a", "c"]


def test_the_command_line_prints_the_error_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "graphfuse.bench", "throughput", "--rounds", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("error: --rounds must be at least 1, got 0")


def test_a_folder_refusing_the_probe_file_is_refused_even_as_root(tmp_path, tiny_tasks, no_work, monkeypatch):
    """The read-only tests skip as root; this one fakes the refusal to run everywhere."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    refused(out_argv("accuracy", tmp_path / "out"),
            "--out folder .* is not a folder this process can write in \\(Permission denied\\)")
    refused(["build", "--json", str(tmp_path / "b.json")], "--json folder .* is not a folder this process can write in")


@pytest.mark.parametrize("command, default", [("accuracy", "results/accuracy"), ("ablation", "results/ablation"),
                                              ("robustness", "results/robustness"), ("tune", "results/tuned.json")])
def test_each_commands_help_names_its_own_out_default(command, default, capsys):
    with pytest.raises(SystemExit):
        parse_args([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"(default: {default})" in help_text
    assert parse_args([command]).out == Path(default)


@pytest.mark.parametrize("command, runs", [("ablation", "classification tasks"),
                                           ("robustness", "classification tasks of two modalities or more")])
@pytest.mark.parametrize("tasks", ["_tiny_retrieval", "_tiny,_tiny_retrieval"])
def test_tasks_a_command_has_no_methods_for_are_refused_before_training(tmp_path, tiny_tasks, monkeypatch, command,
                                                                         runs, tasks):
    monkeypatch.setattr(accuracy_cli, "run_plans", lambda *args, **kwargs: pytest.fail("training started"))
    refused([command, "--tasks", tasks, "--out", str(tmp_path / "out")],
            re.escape(f"error: python -m graphfuse.bench {command} runs {runs}; --tasks names '_tiny_retrieval' "
                      f"(retrieval, 2 modalities); name tasks it runs, e.g. synergy, digits"))
    assert not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("command, planned", [("accuracy", ["_tiny", "_tiny_retrieval"]), ("ablation", ["_tiny"]),
                                              ("robustness", ["_tiny"])])
def test_all_tasks_are_the_tasks_a_command_runs(tmp_path, tiny_tasks, monkeypatch, caplog, command, planned):
    monkeypatch.setattr(accuracy_cli, "list_tasks", lambda: ["_tiny", "_tiny_retrieval"])
    plans = {}
    monkeypatch.setattr(accuracy_cli, "run_plans", lambda args, chosen, *rest: plans.update(chosen) or {"tasks": {}})
    with caplog.at_level("INFO", logger="graphfuse.bench"):
        assert main([command, "--tasks", "all", "--out", str(tmp_path / "out")]) == 0
    assert list(plans) == planned
    assert ("task '_tiny_retrieval': python -m graphfuse.bench" in caplog.text) == (command != "accuracy")
