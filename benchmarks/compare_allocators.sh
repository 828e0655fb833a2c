#!/usr/bin/env bash
# Runs the graph construction benchmark once with glibc's allocator as it comes and once tuned
# (freed memory kept in the process), each under /usr/bin/time -v, and prints the speedups and
# the kernel-side cost (page faults, system time) of each run.
#
# Usage: benchmarks/compare_allocators.sh [extra `python -m graphfuse.bench build` arguments]
# Needs the environment of `make bench` (.venv) and writes benchmarks/results/build-{tuned,default}.*
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
mkdir -p benchmarks/results
for allocator in default tuned; do
    echo "== allocator: $allocator"
    /usr/bin/time -v -o "benchmarks/results/build-$allocator.time" \
        "$python" -m graphfuse.bench build --allocator "$allocator" --json "benchmarks/results/build-$allocator.json" "$@"
    grep -E "Elapsed|User time|System time|Minor|Maximum resident" "benchmarks/results/build-$allocator.time"
done
