"""The plain training loop of examples/plain_loop.py (the README's snippet for people who bring their own
trainer) runs and learns."""
import re
import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_loop.py"


@pytest.mark.usefixtures("one_thread")
def test_the_plain_loop_trains_with_builder_collate_the_model_and_the_task_loss(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    losses = [float(value) for value in re.findall(r"epoch \d: loss ([\d.]+)", out)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert "{'accuracy': 1.0, 'macro_f1': 1.0}" in out
