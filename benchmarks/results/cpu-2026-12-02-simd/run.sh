#!/usr/bin/env bash
# The runs recorded in this folder: the CPU's SIMD fast path (src/cpu/fast_path.hpp) against
# the generic passes (CULOSS_CPU_FAST_PATH=0, same library) in the Google Benchmark suite, and
# culoss.torch side by side with the PyTorch peers (bench_vs_torch.py: F.*, MONAI, smp, kornia,
# hand-written PyTorch, eager and torch.compile), at PyTorch's default thread count.
#
#   bash benchmarks/results/cpu-2026-12-02-simd/run.sh OUTDIR [ROUNDS]
#
# GBENCH=0 / VS_TORCH=0 / COMPILE=0 / CPU_TIME=0 skip a part. Then:
#   python3 benchmarks/results/cpu-2026-12-02-simd/summarize.py OUTDIR    # OUTDIR/summary.md
#
# needs build-bench/benchmarks/culoss_bench (CPU-only Release build with
# -DCULOSS_BUILD_BENCHMARKS=ON) and the Python package installed in the current python3
# (CMAKE_ARGS=-DCULOSS_ENABLE_CUDA=OFF pip install ./bindings/python), built with libhwy-dev.
set -euo pipefail
OUT=${1:?output folder}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BENCH=${BENCH:-$REPO/build-bench/benchmarks/culoss_bench}
PY=${PY:-python3}
mkdir -p "$OUT/gbench" "$OUT/vs_torch"
{
  date -u; uname -a; lscpu; nproc; free -g
  "$PY" -c "import torch, culoss; print('torch', torch.__version__, 'threads', torch.get_num_threads()); print('culoss', culoss.__version__, culoss.get_num_threads())"
} >"$OUT/machine.txt" 2>&1
# Google Benchmark, interleaved: generic passes and fast path alternate, the order flipping
# every round, so that the load of a shared machine falls on both.
for r in $(seq 1 "$ROUNDS"); do
  [ "${GBENCH:-1}" = 0 ] && break
  if (( r % 2 )); then order="generic fast"; else order="fast generic"; fi
  for v in $order; do
    echo "== $(date -u +%T) culoss_bench $v round $r, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
    env $( [ "$v" = generic ] && echo CULOSS_CPU_FAST_PATH=0 ) "$BENCH" \
      --benchmark_filter='^cpu/(Dice|Jaccard|Tversky|FocalTversky|GeneralizedDice|CrossEntropy|DiceSum)/' \
      --benchmark_min_time=0.3 --benchmark_out="$OUT/gbench/$v-r$r.json" \
      --benchmark_out_format=json >"$OUT/gbench/$v-r$r.log" 2>&1
  done
done
# culoss.torch against the peers, eager (every loss of the script, both shapes), then
# torch.compile at the first shape.
for r in $(seq 1 "$ROUNDS"); do
  [ "${VS_TORCH:-1}" = 0 ] && break
  echo "== $(date -u +%T) bench_vs_torch eager round $r, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  "$PY" "$REPO/benchmarks/python/bench_vs_torch.py" --device cpu --no-compile \
    --shapes 8x4x128x128,2x4x64x64x64 --repeat 20 --warmup 3 \
    --out "$OUT/vs_torch/eager-r$r" >"$OUT/vs_torch/eager-r$r.log" 2>&1
done
if [ "${COMPILE:-1}" != 0 ]; then
  echo "== $(date -u +%T) bench_vs_torch torch.compile, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  "$PY" "$REPO/benchmarks/python/bench_vs_torch.py" --device cpu --compile \
    --shapes 8x4x128x128 --losses ce,dice,dice_ce --repeat 20 --warmup 3 \
    --out "$OUT/vs_torch/compile" >"$OUT/vs_torch/compile.log" 2>&1 || true
fi
# One thread, CPU time (robust to the load of a shared machine): cpu_time.py.
if [ "${CPU_TIME:-1}" != 0 ]; then
  echo "== $(date -u +%T) cpu_time.py, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  "$PY" "$HERE/cpu_time.py" --out "$OUT/cpu_time.md" >"$OUT/cpu_time.log" 2>&1
fi
echo "== $(date -u +%T) done" | tee -a "$OUT/log.txt"
