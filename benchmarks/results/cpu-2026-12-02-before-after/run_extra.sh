#!/usr/bin/env bash
# Two more runs of this folder, after run.sh: (1) the after build's Google Benchmark CPU cases at
# 1 and 2 threads (CULOSS_NUM_THREADS), interleaved, 3 rounds: what the threads alone bring;
# (2) bench_vs_torch with torch.compile rows for the peers (first shape), after build.
#   AFTER=/tmp/culoss-after bash run_extra.sh OUTDIR
set -euo pipefail
OUT=${1:?output folder}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
mkdir -p "$OUT/threads"
for r in 1 2 3; do
  for t in 1 2; do
    echo "== $(date -u +%T) culoss_bench threads=$t round $r, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
    CULOSS_NUM_THREADS=$t "$AFTER/culoss_bench" --benchmark_filter='^cpu/[^/]+/fwd_bwd/(16x4x128x128/f32|4x1x128x128)' \
      --benchmark_min_time=0.3 --benchmark_out="$OUT/threads/t$t-r$r.json" --benchmark_out_format=json \
      >"$OUT/threads-t$t-r$r.log" 2>&1
  done
done
echo "== $(date -u +%T) compile run, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
CULOSS_LIBRARY="$AFTER/libculoss.so" PYTHONPATH="$AFTER/bindings/python" \
  python3 "$REPO/benchmarks/python/bench_vs_torch.py" --device cpu --compile \
    --shapes 8x4x128x128 --losses ce,dice,dice_ce,lovasz_softmax \
    --repeat 20 --warmup 3 --out "$OUT/vs_torch/compile-after" >"$OUT/vs_torch-compile-after.log" 2>&1
echo "== $(date -u +%T) done, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
