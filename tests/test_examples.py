import re
import subprocess
import sys
from pathlib import Path

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
