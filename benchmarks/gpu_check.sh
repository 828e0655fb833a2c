#!/usr/bin/env bash
# The GPU checks, in one run of at most 6 minutes on a machine whose Python already has torch (CUDA)
# and torch-geometric: the GPU tests, then the throughput benchmark at the default size and at the
# realistic size (--preset real), in fp32 and bf16 side by side, and torch.compile's effect on graph
# attention and the transformer. The project is imported from this working tree (nothing is
# installed). Writes gpu_check.log, the JSON of each benchmark and summary.txt to OUT_DIR.
#
#   benchmarks/gpu_check.sh OUT_DIR          (PYTHON=... to pick the interpreter; default python3)
#
# Each stage has its own time limit (350 s in all, so the run ends within 6 minutes) and the script
# goes on after a failed stage; its exit status is the number of stages that failed.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR}
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
failed=0
log="$out/gpu_check.log"
: >"$log"

stage() {  # stage NAME SECONDS COMMAND...: runs one stage under its time limit, logging its output
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local status=${PIPESTATUS[0]}
    echo "== $name: exit $status after $((SECONDS - start)) s" | tee -a "$log"
    [ "$status" -eq 0 ] || failed=$((failed + 1))
}

stage environment 20 "$python" -c "
import torch, torch_geometric, graphfuse
assert torch.cuda.is_available(), 'torch sees no CUDA device'
print('graphfuse', graphfuse.__version__, 'from', graphfuse.__file__)
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'torch_geometric', torch_geometric.__version__)
print('device', torch.cuda.get_device_name(), torch.cuda.get_device_capability())"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv >>"$log" 2>&1

# Every test marked gpu (tests that need a CUDA device; skipped on CPU-only machines).
stage gpu-tests 100 "$python" -m pytest -q -p no:cacheprovider -m gpu tests/nn/test_cuda.py \
    tests/nn/test_backbone_encoder.py tests/pipeline/test_pipeline.py tests/models/test_retrieval.py tests/explain

methods=graphfuse-gcn,graphfuse-gat,graphfuse-hgt,dense-transformer,pyg-heteroconv-gat
stage throughput-default 70 "$python" -m graphfuse.bench throughput --device cuda --rounds 5 \
    --methods "$methods" --modes fp32,bf16 --json "$out/throughput-default.json"
stage throughput-compile 90 "$python" -m graphfuse.bench throughput --device cuda --rounds 5 \
    --methods graphfuse-gat,dense-transformer --modes fp32,compile --json "$out/throughput-compile.json"
stage throughput-real 70 "$python" -m graphfuse.bench throughput --device cuda --preset real --rounds 5 \
    --methods "$methods" --modes fp32,bf16 --json "$out/throughput-real.json"

"$python" - "$out" <<'PY' | tee "$out/summary.txt" | tee -a "$log"
"""Graph attention against the transformer (same mode) and each mode against fp32, from the JSON."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
for name in ("throughput-default", "throughput-compile", "throughput-real"):
    path = out / f"{name}.json"
    if not path.is_file():
        print(f"{name}: no results")
        continue
    report = json.loads(path.read_text())
    print(f"{name} on {report['config']['device_name']}:")
    for row in report["results"]:
        if row.get("skipped"):
            print(f"  {row['method']:22} {row['cross']:6} not run: {row['skipped']}")
            continue
        ratio = row["vs_dense_transformer"]
        print(f"  {row['method']:22} {row['cross']:6} {row['mode']:12} {row['samples_per_s']:9.1f} samples/s "
              f"{row['peak_mb']:8.0f} MB  vs transformer {ratio:.2f}x  vs fp32 {row['vs_fp32']:.2f}x"
              if ratio is not None else f"  {row['method']:22} {row['cross']:6} {row['mode']:12} "
              f"{row['samples_per_s']:9.1f} samples/s")
PY
echo "stages failed: $failed" | tee -a "$log"
exit "$failed"
