"""The README's memory bound for a 10-minute recording, measured as it states it: benchmarks/long_recording.py
for graph-gat in a fresh process (its peak resident set size, imports included)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The README's bound for graph-gat (and graph-gcn), in MiB.
BOUND_MB = 1536


def test_a_ten_minute_recording_trains_and_predicts_within_the_stated_bound():
    run = subprocess.run([sys.executable, "benchmarks/long_recording.py", "--one", "--models", "graph-gat"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout.splitlines()[-1])
    assert record["frames"] == 60_000 and record["nodes"] == 60_058 and record["edges"] == 721_652
    assert set(record["rss_mb"]) == {"imports", "featurize", "collate", "train_step", "predict"}
    assert record["peak_rss_mb"] < BOUND_MB, record["rss_mb"]
