#!/usr/bin/env bash
# The CPU benchmarks of this folder, on an otherwise idle machine: bash run.sh OUTDIR (needs
# culoss_bench of a CPU-only Release build with benchmarks in $BENCH, default
# build-bench/benchmarks/culoss_bench, and the Python package with the same library installed
# in $PY, default python3).
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${1:?output folder}
mkdir -p $OUT/vs_torch $OUT/gbench
PY=${PY:-python3}
BENCH=${BENCH:-build-bench/benchmarks/culoss_bench}
{ date -u; uname -a; lscpu | head -20; nproc; free -g; cat /proc/loadavg
  $PY -c "import torch, culoss; print('torch', torch.__version__, 'threads', torch.get_num_threads()); print('culoss', culoss.__version__, culoss.get_num_threads(), culoss.library_path())"
  git log --oneline -1; } > $OUT/machine.txt 2>&1
# Two rounds of the eager table: this machine's wall-clock times vary from minute to minute
for round in eager eager2; do
echo "== $(date -u +%T) $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --shapes 8x4x128x128,2x4x64x64x64 \
  --losses ce,dice,dice_ce,tversky,gdice,bce,focal,mcc,topk_ce,lovasz_softmax --repeat 20 --warmup 3 \
  --out $OUT/vs_torch/$round > $OUT/vs_torch/$round.log 2>&1
done
# The softmax focal loss (its fast path came after the rounds above: commit 23b31c4)
for round in focal_softmax focal_softmax2; do
echo "== $(date -u +%T) $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --shapes 8x4x128x128,2x4x64x64x64 \
  --losses focal_softmax --repeat 20 --warmup 3 --out $OUT/vs_torch/$round > $OUT/vs_torch/$round.log 2>&1
done
echo "== $(date -u +%T) compile, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --compile --shapes 8x4x128x128 \
  --losses ce,dice,dice_ce --repeat 20 --warmup 3 --out $OUT/vs_torch/compile > $OUT/vs_torch/compile.log 2>&1
echo "== $(date -u +%T) geometry, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --losses hausdorff_dt,cldice \
  --shapes 4x3x128x128,1x3x48x48x48 --repeat 7 --warmup 1 --out $OUT/vs_torch/geometry > $OUT/vs_torch/geometry.log 2>&1
# The geometry kinds again after their fast path (commit f676029; two rounds)
# (and after the uninitialised workspace, commit 71d09f4: rounds geometry_ws, geometry_ws2; after
# the kept workspace, commit c272e37: geometry_kept, geometry_kept2; after the skeleton's
# 32-bit selections and image groups, commit 93d101e: geometry_groups, geometry_groups2)
for round in geometry_fast geometry_fast2; do
echo "== $(date -u +%T) $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --losses hausdorff_dt,cldice \
  --shapes 4x3x128x128,1x3x48x48x48 --repeat 7 --warmup 1 --out $OUT/vs_torch/$round > $OUT/vs_torch/$round.log 2>&1
done
echo "== $(date -u +%T) cpu_time, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/results/cpu-2026-12-02-simd/cpu_time.py --out $OUT/cpu_time.md > $OUT/cpu_time.log 2>&1
echo "== $(date -u +%T) gbench 16M CE, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$BENCH --benchmark_filter='cpu/(CrossEntropy/fwd_bwd/4x4x1024|Copy)' \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true > $OUT/gbench/ce16M-2threads.txt 2>&1
CULOSS_NUM_THREADS=1 $BENCH --benchmark_filter='cpu/(CrossEntropy/fwd_bwd/4x4x1024|Copy)' \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true > $OUT/gbench/ce16M-1thread.txt 2>&1
echo "== $(date -u +%T) gbench geometry, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$BENCH --benchmark_filter='cpu/(HausdorffDT|Boundary|ClDice)/' \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true > $OUT/gbench/geometry-2threads.txt 2>&1
echo "== $(date -u +%T) clDice memory, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/results/cpu-2026-12-03/cldice_memory.py --out $OUT/cldice_memory.md > $OUT/cldice_memory.log 2>&1
# After the label counts, 16-bit gradients and bfloat16 saved gradients (commit ce643c7): the
# eager table again, and bfloat16 (bf16_f32saved was this command on commit 2ef392f)
for round in counts16 counts16_2; do
echo "== $(date -u +%T) $round, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/log.txt
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --shapes 8x4x128x128,2x4x64x64x64 \
  --losses ce,dice,dice_ce,tversky,gdice,bce,focal,mcc,topk_ce,focal_softmax --repeat 20 --warmup 3 \
  --out $OUT/vs_torch/$round > $OUT/vs_torch/$round.log 2>&1
done
for round in bf16_r1 bf16_r2; do
$PY benchmarks/python/bench_vs_torch.py --device cpu --no-compile --shapes 8x4x128x128,2x4x64x64x64 \
  --losses ce,dice,bce --dtype bfloat16 --repeat 20 --warmup 3 --out $OUT/vs_torch/$round \
  > $OUT/vs_torch/$round.log 2>&1
done
$PY benchmarks/python/call_overhead.py > $OUT/call_overhead_2.txt
# The C calls before and after (gbench/ab_*.txt: the commands are in their first lines; "old"
# is a build of commit 7ac55ad)
echo "== $(date -u +%T) done" | tee -a $OUT/log.txt
