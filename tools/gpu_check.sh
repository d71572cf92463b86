#!/usr/bin/env bash
# One command that checks culoss on a GPU machine (CUDA toolkit and PyTorch; network, GoogleTest
# and Google Benchmark not needed). Runs, each under a time limit, within one overall budget
# (GPU_CHECK_BUDGET):
#   1. cuda_tests      BUILD/tests/culoss_cuda_tests (CUDA backend vs CPU backend)
#   2. sanitize        tools/sanitize_cuda.sh when present, else compute-sanitizer memcheck and
#                      racecheck on a short gtest filter
#   3. pytest          tests/python against bindings/python + BUILD/src/libculoss.so (CUDA
#                      tensors: the CUDA cases run when a GPU is present)
#   4. culoss_bench    BUILD/benchmarks/culoss_bench, a filtered set, JSON
#   5. bench_vs_torch  benchmarks/python/bench_vs_torch.py (culoss vs MONAI, smp, kornia,
#                      torchvision, torch.nn.functional, eager and torch.compile), gets the time
#                      that is left
# and prints PASS / FAIL / SKIP per step and a summary last.
#
# Build the folder first on a machine with network (no GPU needed): tools/prepare_gpu_build.sh
# [build-gpu]; copy the checkout with it to the GPU machine (docs/gpu-check.md). Usage there:
#   bash tools/gpu_check.sh [BUILD_DIR=build-gpu] OUT_DIR
# Environment:
#   GPU_CHECK_STEPS      steps to run (default "cuda_tests sanitize pytest culoss_bench bench_vs_torch")
#   GPU_CHECK_BUDGET     seconds for everything (default 560)
#   GTEST_FILTER_CUDA    filter for the CUDA tests (default: all)
#   SANITIZE_FILTER      gtest filter under compute-sanitizer (default: the three plain suites)
#   PYTEST_ARGS          extra pytest arguments (default: -q)
#   CULOSS_BENCH_FILTER  --benchmark_filter for culoss_bench
#   BENCH_VS_TORCH_ARGS  extra arguments for bench_vs_torch.py
#   CAP_CUDA_TESTS=110 CAP_SANITIZE=120 CAP_SANITIZE_TOOL=60 CAP_PYTEST=150 CAP_CULOSS_BENCH=80
#                        per-step limits in seconds (bench_vs_torch gets what is left)
# Files written to OUT_DIR: summary.txt, logs.tar.gz (every log), culoss_bench.json,
# vs_torch/{results.md,results.json,chart.png}.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${1:-build-gpu}
OUTDIR=${2:-}
[ -n "$OUTDIR" ] || { echo "usage: $0 BUILD_DIR OUT_DIR" >&2; exit 2; }
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
STEPS=${GPU_CHECK_STEPS:-cuda_tests sanitize pytest culoss_bench bench_vs_torch}
BUDGET=${GPU_CHECK_BUDGET:-560}
START=$(date +%s)
LOGS=$(mktemp -d /tmp/gpu_check_logs.XXXXXX)
SUMMARY=$OUTDIR/summary.txt
PY=${PYTHON:-python3}
declare -a RESULTS=()

pack_logs() {  # every log in one archive
  tar -czf "$OUTDIR/logs.tar.gz" -C "$LOGS" . 2>/dev/null || true
}
trap pack_logs EXIT

elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(elapsed) )); }
# cap SECONDS: the step's limit, never past the budget (less a margin for the rest)
cap() { local want=$1 l; l=$(( $(left) - 10 )); [ "$l" -lt "$want" ] && want=$l; echo "$want"; }
want_step() { [[ " $STEPS " == *" $1 "* ]]; }
record() {  # record NAME STATUS SECONDS DETAIL
  RESULTS+=("$(printf '%-15s %-4s %5ss  %s' "$1" "$2" "$3" "$4")")
  printf '\n>>> %-15s %s (%ss) %s\n' "$1" "$2" "$3" "$4"
}
# run_step NAME LIMIT LOGFILE CMD...: runs under timeout, output to LOGFILE (tail shown)
run_step_cmd() {
  local name=$1 limit=$2 log=$3; shift 3
  if [ "$limit" -lt 15 ]; then record "$name" SKIP 0 "no time left in the ${BUDGET}s budget"; return 99; fi
  echo; echo "=== $name (limit ${limit}s): $*"
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >"$log" 2>&1
  rc=$?
  tail -n 15 "$log"
  STEP_SECONDS=$(( $(date +%s) - t0 ))
  return $rc
}

# ------------------------------------------------------------------------ environment
{
  echo "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
  echo "checkout: $ROOT ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ', with local changes'))"
  echo "build: $BUILD"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv 2>&1
  nvcc --version 2>&1 | tail -n 1
  command -v compute-sanitizer || echo "compute-sanitizer: not on the PATH"
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)" 2>&1
} >"$LOGS/env.log" 2>&1
cat "$LOGS/env.log"

export LD_LIBRARY_PATH=$BUILD/benchmarks:$BUILD/src:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONPATH=$ROOT/bindings/python${PYTHONPATH:+:$PYTHONPATH}
export CULOSS_LIBRARY=$BUILD/src/libculoss.so
export PYTHONUNBUFFERED=1

# Competitor libraries the machine lacks (MONAI, smp, kornia): wheels that
# tools/prepare_gpu_build.sh put in BUILD/wheels, installed without network into a scratch folder.
if compgen -G "$BUILD/wheels/*.whl" >/dev/null; then
  if $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target /tmp/gpu_check_site "$BUILD"/wheels/*.whl >"$LOGS/wheels.log" 2>&1; then
    export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site
    echo "installed carried wheels: $(cd "$BUILD/wheels" && ls *.whl | tr '\n' ' ')"
  else
    echo "carried wheels failed to install (see wheels.log); their benchmark rows are skipped"
  fi
fi

if [ ! -f "$BUILD/src/libculoss.so" ]; then
  echo "gpu_check: $BUILD/src/libculoss.so missing: build it with tools/prepare_gpu_build.sh and copy the folder here" >&2
fi

# ------------------------------------------------------------------------ 1. CUDA tests
if want_step cuda_tests; then
  bin=$BUILD/tests/culoss_cuda_tests
  if [ ! -x "$bin" ]; then
    record cuda_tests SKIP 0 "$bin not built"
  else
    run_step_cmd cuda_tests "$(cap "${CAP_CUDA_TESTS:-110}")" "$LOGS/cuda_tests.log" "$bin" --gtest_brief=1 \
      --gtest_filter="${GTEST_FILTER_CUDA:-*}" --gtest_output="xml:$LOGS/cuda_tests.xml"
    rc=$?
    passed=$(grep -oE '\[  PASSED  \] [0-9]+' "$LOGS/cuda_tests.log" | grep -oE '[0-9]+$' || true)
    failed=$(grep -cE '^\[  FAILED  \] [A-Za-z]' "$LOGS/cuda_tests.log" || true)
    skipped=$(grep -oE '\[  SKIPPED \] [0-9]+' "$LOGS/cuda_tests.log" | grep -oE '[0-9]+$' || true)
    detail="${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
    case $rc in
      0) [ "${skipped:-0}" -gt 0 ] && [ "${passed:-0}" -eq 0 ] && record cuda_tests SKIP "$STEP_SECONDS" "$detail (no device?)" \
           || record cuda_tests PASS "$STEP_SECONDS" "$detail" ;;
      99) ;;
      124|137) record cuda_tests FAIL "$STEP_SECONDS" "timed out; $detail" ;;
      *) record cuda_tests FAIL "$STEP_SECONDS" "rc=$rc; $detail" ;;
    esac
  fi
fi

# ------------------------------------------------------------------------ 2. sanitizers
if want_step sanitize; then
  if [ -f tools/sanitize_cuda.sh ]; then
    # tools/sanitize_cuda.sh takes the build folder and an output folder
    mkdir -p "$LOGS/sanitize"
    run_step_cmd sanitize "$(cap "${CAP_SANITIZE:-120}")" "$LOGS/sanitize.log" \
      bash tools/sanitize_cuda.sh "$BUILD" "$LOGS/sanitize"
    rc=$?
    case $rc in
      0) record sanitize PASS "$STEP_SECONDS" "tools/sanitize_cuda.sh" ;;
      99) ;;
      124|137) record sanitize FAIL "$STEP_SECONDS" "tools/sanitize_cuda.sh timed out" ;;
      *) record sanitize FAIL "$STEP_SECONDS" "tools/sanitize_cuda.sh rc=$rc" ;;
    esac
  elif ! command -v compute-sanitizer >/dev/null; then
    record sanitize SKIP 0 "compute-sanitizer not on the PATH"
  elif [ ! -x "$BUILD/tests/culoss_cuda_tests" ]; then
    record sanitize SKIP 0 "culoss_cuda_tests not built"
  else
    filter=${SANITIZE_FILTER:-ElementwiseCuda.*:LovaszCuda.*:RegionCuda.*}
    for tool in memcheck racecheck; do
      extra=()
      [ $tool = memcheck ] && extra=(--leak-check full)
      run_step_cmd "sanitize_$tool" "$(cap "${CAP_SANITIZE_TOOL:-60}")" "$LOGS/sanitize_$tool.log" \
        compute-sanitizer --tool $tool "${extra[@]}" --error-exitcode 86 \
        "$BUILD/tests/culoss_cuda_tests" --gtest_brief=1 --gtest_filter="$filter"
      rc=$?
      summary_line=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/sanitize_$tool.log" | tail -n 1 | sed 's/^========= //')
      case $rc in
        0) record "sanitize_$tool" PASS "$STEP_SECONDS" "${summary_line:-no summary line} [$filter]" ;;
        99) ;;
        124|137) record "sanitize_$tool" FAIL "$STEP_SECONDS" "timed out [$filter]" ;;
        86) record "sanitize_$tool" FAIL "$STEP_SECONDS" "${summary_line:-errors reported}" ;;
        *) record "sanitize_$tool" FAIL "$STEP_SECONDS" "rc=$rc ${summary_line}" ;;
      esac
    done
  fi
fi

# ------------------------------------------------------------------------ 3. Python tests
if want_step pytest; then
  if ! $PY -c "import pytest" 2>/dev/null; then
    record pytest SKIP 0 "pytest not installed"
  else
    # shellcheck disable=SC2086
    run_step_cmd pytest "$(cap "${CAP_PYTEST:-150}")" "$LOGS/pytest.log" $PY -m pytest tests/python \
      -p no:cacheprovider -rs ${PYTEST_ARGS:--q} --junitxml="$LOGS/pytest.xml"
    rc=$?
    line=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$LOGS/pytest.log" | tail -n 1 | tr -d '=' | sed 's/^ *//')
    cuda_skips=$(grep -ciE 'SKIPPED.*(cuda|gpu|device)' "$LOGS/pytest.log" || true)
    case $rc in
      0) record pytest PASS "$STEP_SECONDS" "$line; ${cuda_skips:-0} CUDA-related skips" ;;
      99) ;;
      124|137) record pytest FAIL "$STEP_SECONDS" "timed out" ;;
      *) record pytest FAIL "$STEP_SECONDS" "rc=$rc; $line" ;;
    esac
  fi
fi

# ------------------------------------------------------------------------ 4. culoss_bench
if want_step culoss_bench; then
  bin=$BUILD/benchmarks/culoss_bench
  if [ ! -x "$bin" ]; then
    record culoss_bench SKIP 0 "$bin not built"
  else
    filter=${CULOSS_BENCH_FILTER:-'^cuda/[^/]+/fwd_bwd/((16x4x512x512/f32/i64|32x1x1024x1024/f32|2x4x64x64)/|(8x4x512x512|2x4x128x128x128)/f32/i64/softmax/manual)'}
    run_step_cmd culoss_bench "$(cap "${CAP_CULOSS_BENCH:-80}")" "$LOGS/culoss_bench.log" "$bin" \
      --benchmark_filter="$filter" --benchmark_min_time=0.05 \
      --benchmark_out="$OUTDIR/culoss_bench.json" --benchmark_out_format=json
    rc=$?
    n=$(grep -cE '^cuda/.*manual_time' "$LOGS/culoss_bench.log" || true)
    skipped=$(grep -cE 'no CUDA device|SKIPPED|ERROR OCCURRED' "$LOGS/culoss_bench.log" || true)
    case $rc in
      0) if [ "${n:-0}" -gt 0 ] && [ "${skipped:-0}" -lt "$n" ]; then
           record culoss_bench PASS "$STEP_SECONDS" "$n benchmarks ($skipped skipped) -> culoss_bench.json"
         else record culoss_bench SKIP "$STEP_SECONDS" "$n benchmarks, $skipped skipped (no device?)"; fi ;;
      99) ;;
      124|137) record culoss_bench FAIL "$STEP_SECONDS" "timed out after $n benchmarks (JSON is written at the end: lost)" ;;
      *) record culoss_bench FAIL "$STEP_SECONDS" "rc=$rc" ;;
    esac
  fi
fi

# ------------------------------------------------------------------------ 5. vs PyTorch
if want_step bench_vs_torch; then
  limit=$(cap 600)
  # the script stops starting rows once its own budget is spent; the timeout is the backstop
  budget=$(( limit - 45 ))
  [ "$budget" -lt 20 ] && budget=20
  # shellcheck disable=SC2086
  run_step_cmd bench_vs_torch "$limit" "$LOGS/bench_vs_torch.log" $PY \
    benchmarks/python/bench_vs_torch.py --device cuda --out "$OUTDIR/vs_torch" \
    --time-budget "$budget" ${BENCH_VS_TORCH_ARGS:-}
  rc=$?
  line=$(grep -E '^bench_vs_torch: ' "$LOGS/bench_vs_torch.log" | tail -n 1)
  [ -n "$line" ] || line=$(grep -v '^\s*$' "$LOGS/bench_vs_torch.log" | tail -n 1 | cut -c1-200)
  case $rc in
    0) record bench_vs_torch PASS "$STEP_SECONDS" "${line#bench_vs_torch: }" ;;
    99) ;;
    124|137) record bench_vs_torch FAIL "$STEP_SECONDS" "timed out (partial results.md/json kept)" ;;
    *) record bench_vs_torch FAIL "$STEP_SECONDS" "rc=$rc ${line#bench_vs_torch: }" ;;
  esac
  [ -f "$OUTDIR/vs_torch/results.md" ] && cp "$OUTDIR/vs_torch/results.md" "$LOGS/bench_vs_torch_results.md"
fi

# ------------------------------------------------------------------------ summary (last)
fails=0
for r in "${RESULTS[@]}"; do [[ $r == *" FAIL "* ]] && fails=$((fails + 1)); done
{
  echo
  echo "=================== gpu_check summary ($(elapsed)s of ${BUDGET}s) ==================="
  gpu=$(grep -A1 '^name, driver_version' "$LOGS/env.log" | tail -n 1)
  echo "GPU: ${gpu:-none found (nvidia-smi failed)}"
  printf '%s\n' "${RESULTS[@]}"
  echo "files: $OUTDIR (summary.txt, logs.tar.gz, culoss_bench.json, vs_torch/)"
  [ "$fails" -eq 0 ] && echo "RESULT: PASS (no step failed)" || echo "RESULT: FAIL ($fails step(s) failed)"
} | tee "$SUMMARY"
pack_logs
[ "$fails" -eq 0 ]
