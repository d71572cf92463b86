#!/usr/bin/env bash
# The runs recorded in this folder: culoss before (main, ae36286, single-threaded CPU backend)
# and after (branch issue16: thread pool) side by side with the PyTorch peers, interleaved
# (before/after alternate, the order flipping every round) so that the load of this shared
# 2-core machine falls on both. Each version is a frozen copy: its libculoss.so and culoss_bench
# and its own Python package (bindings/python of that commit), loaded through CULOSS_LIBRARY.
#
#   BEFORE=/tmp/culoss-before AFTER=/tmp/culoss-after ROUNDS=3 bash run.sh OUTDIR
set -euo pipefail
OUT=${1:?output folder}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
{
  date -u; uname -a; lscpu; nproc; free -g
  python3 -c "import torch; print('torch', torch.__version__, 'threads', torch.get_num_threads(), 'interop', torch.get_num_interop_threads())"
} >"$OUT/machine.txt" 2>&1

bvt() {  # version label round
  local dir=$1 label=$2 round=$3
  echo "== $(date -u +%T) $label round $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  CULOSS_LIBRARY="$dir/libculoss.so" PYTHONPATH="$dir/bindings/python" \
    python3 "$REPO/benchmarks/python/bench_vs_torch.py" --device cpu --no-compile \
      --shapes 8x4x128x128,2x4x64x64x64 --losses ce,dice,dice_ce,lovasz_softmax \
      --repeat 20 --warmup 3 --out "$OUT/vs_torch/$label-r$round" >"$OUT/vs_torch-$label-r$round.log" 2>&1
  rm -f "$OUT/vs_torch/$label-r$round/chart.png"
}
gbench() {
  local dir=$1 label=$2 round=$3
  echo "== $(date -u +%T) culoss_bench $label round $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  "$dir/culoss_bench" --benchmark_filter='^cpu/' --benchmark_min_time=0.3 \
    --benchmark_out="$OUT/gbench/$label-r$round.json" --benchmark_out_format=json \
    >"$OUT/gbench-$label-r$round.log" 2>&1
}
mkdir -p "$OUT/vs_torch" "$OUT/gbench"
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 )); then order="before after"; else order="after before"; fi
  for v in $order; do
    if [ "$v" = before ]; then d=$BEFORE; else d=$AFTER; fi
    bvt "$d" "$v" "$r"
    gbench "$d" "$v" "$r"
  done
done
echo "== $(date -u +%T) done, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
