import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_readme_python_snippets_run(code):
    if re.search(r"^(from|import) (transformers|tokenizers)\b", code, flags=re.MULTILINE):
        pytest.importorskip("transformers")  # the `hf` extra
    exec(compile(code, str(README), "exec"), {})


def test_readme_has_exactly_the_two_set_up_commands_and_ci_runs_the_test_one():
    commands = [line.split("#")[0].strip() for block in SHELL_BLOCKS for line in block.splitlines()]
    assert [c for c in commands if c] == ["make bench", "make test"]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_the_training_snippet_gives_the_same_metrics_in_two_fresh_processes():
    """Seeded initial weights (``create_model(..., seed=0)``) and the Trainer's seed make a run repeatable."""
    code = next(block for block in PYTHON_BLOCKS if "trainer.evaluate(" in block and "seed=0" in block)
    outputs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              timeout=300).stdout for _ in range(2)]
    assert outputs[0] == outputs[1] and "accuracy" in outputs[0]
