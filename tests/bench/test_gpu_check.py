"""benchmarks/gpu_check.sh's orchestration, run with a stand-in interpreter (no GPU here): every
stage runs with its options, a failed stage does not stop the others, and the summary reads each
benchmark's JSON."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.sh"

STAND_IN = """#!{python}
import json, pathlib, sys
with open({calls!r}, "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:1] == ["-"]:  # the summary, read from stdin, sees the arguments as python3 would pass them
    sys.argv = args
    exec(sys.stdin.read())
    sys.exit(0)
if "--json" in args:
    row = {{"method": "graphfuse-gat", "cross": "full", "mode": "fp32", "samples_per_s": 100.0, "peak_mb": 50.0,
           "vs_dense_transformer": 2.5, "vs_fp32": 1.0}}
    skipped = {{"method": "dgl-gat", "cross": "full", "skipped": "dgl 1.1.3 is CPU-only here"}}
    report = {{"config": {{"device_name": "Stand-in GPU"}}, "results": [row, skipped]}}
    pathlib.Path(args[args.index("--json") + 1]).write_text(json.dumps(report))
sys.exit(3 if "pytest" in args else 0)
"""


def test_every_stage_runs_and_the_summary_reads_the_results(tmp_path):
    calls = tmp_path / "calls.jsonl"
    stand_in = tmp_path / "python"
    stand_in.write_text(STAND_IN.format(python=sys.executable, calls=str(calls)))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHON": str(stand_in)})
    assert result.returncode == 1, result.stdout + result.stderr  # the stand-in's pytest fails: one stage
    invocations = [json.loads(line) for line in calls.read_text().splitlines()]
    benches = [args for args in invocations if args[:3] == ["-m", "graphfuse.bench", "throughput"]]
    assert [args[args.index("--json") + 1] for args in benches] == [
        str(out / f"throughput-{name}.json") for name in ("default", "compile", "real")]
    assert all(args[args.index("--device") + 1] == "cuda" for args in benches)
    assert "--preset" in benches[2] and benches[2][benches[2].index("--modes") + 1] == "fp32,bf16"
    assert benches[1][benches[1].index("--modes") + 1] == "fp32,compile"
    pytest_call = next(args for args in invocations if args[:2] == ["-m", "pytest"])
    assert pytest_call[pytest_call.index("-m", 1) + 1] == "gpu"
    summary = (out / "summary.txt").read_text()
    assert "throughput-real on Stand-in GPU:" in summary and "vs transformer 2.50x" in summary
    assert "not run: dgl 1.1.3 is CPU-only here" in summary
    log = (out / "gpu_check.log").read_text()
    assert "== gpu-tests: exit 3" in log and "stages failed: 1" in log


def test_the_stages_time_limits_fit_in_six_minutes():
    """The issue gives the GPU checks 6 minutes: the stages' limits must add up to less."""
    limits = [int(line.split()[2]) for line in SCRIPT.read_text().splitlines() if line.startswith("stage ")]
    assert len(limits) == 5 and sum(limits) <= 350
