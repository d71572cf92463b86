#!/usr/bin/env bash
# Runs the CUDA test binary under NVIDIA compute-sanitizer, one tool after another:
#   memcheck   out-of-bounds and misaligned device accesses, leaks of device allocations
#   racecheck  shared-memory data races (block reductions, sort/scan staging)
#   initcheck  device reads of global memory never written (workspace, partial sums)
#   synccheck  invalid __syncthreads / warp-synchronous usage
# Each tool gets a gtest filter that keeps it short (the sanitizers slow kernels 10-100x) and a
# time cap; logs go to OUT_DIR/<tool>.log and one line per tool to OUT_DIR/summary.txt.
#
# Usage: tools/sanitize_cuda.sh [BUILD_DIR] [OUT_DIR]      (also BUILD=... in the env)
#   BUILD_DIR  a CUDA build with tests (default build-gpu; tools/prepare_gpu_build.sh makes one)
#   OUT_DIR    where the logs go (default: sanitize-logs)
# Environment:
#   SANITIZE_TOOLS          tools to run (default "memcheck racecheck initcheck synccheck")
#   SANITIZE_TOOL_SECONDS   time cap per tool (default 28: four tools fit a 2-minute step)
#   SANITIZE_FILTER_<TOOL>  gtest filter for one tool, e.g. SANITIZE_FILTER_MEMCHECK='*'
#   COMPUTE_SANITIZER       path of compute-sanitizer (default: PATH, then the CUDA toolkit)
# Exit status: 0 every tool ran clean; 1 a tool reported errors or a test failed under it;
#              3 a tool hit its time cap (no error seen before); 2 usage or setup problems.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${1:-${BUILD:-build-gpu}}
OUTDIR=${2:-sanitize-logs}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
mkdir -p "$OUTDIR" || exit 2
OUTDIR=$(cd "$OUTDIR" && pwd)
SUMMARY=$OUTDIR/summary.txt
: >"$SUMMARY"

say() { echo "$*" | tee -a "$SUMMARY"; }

BIN=$BUILD/tests/culoss_cuda_tests
if [ ! -x "$BIN" ]; then
  say "sanitize_cuda: $BIN is missing (configure with CUDA and tests, e.g. tools/prepare_gpu_build.sh)"
  exit 2
fi
CS=${COMPUTE_SANITIZER:-}
if [ -z "$CS" ]; then
  for c in "$(command -v compute-sanitizer 2>/dev/null)" "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" \
    "${CUDA_HOME:-/usr/local/cuda}/compute-sanitizer/compute-sanitizer" /usr/local/cuda/bin/compute-sanitizer; do
    if [ -n "$c" ] && [ -x "$c" ]; then CS=$c; break; fi
  done
fi
if [ -z "$CS" ]; then
  say "sanitize_cuda: compute-sanitizer not found (PATH, \$CUDA_HOME, /usr/local/cuda)"
  exit 2
fi
if command -v nvidia-smi >/dev/null && ! nvidia-smi -L >/dev/null 2>&1; then
  say "sanitize_cuda: nvidia-smi sees no GPU"
  exit 2
fi

TOOLS=${SANITIZE_TOOLS:-memcheck racecheck initcheck synccheck}
CAP=${SANITIZE_TOOL_SECONDS:-28}

# Default filters: the dtype sweep of the three CUDA-vs-CPU suites (every kernel family in every
# dtype) plus the fixtures that exercise the tool's subject. Tests of more than 2^31 elements are
# left out everywhere (too slow under a sanitizer).
ALWAYS_OUT='*2Pow31*'
filter_for() {
  local tool=$1 var override
  var="SANITIZE_FILTER_$(echo "$tool" | tr '[:lower:]' '[:upper:]')"
  override=${!var:-}
  if [ -n "$override" ]; then echo "$override"; return; fi
  case $tool in
    memcheck)  # bounds: offsets, caller workspaces (exact size, unaligned), in place, refusals
      echo "Dtypes/*:*ByteOffsetsAreHonoured:*ExactWorkspaceAtAnUnalignedAddressWorks:*InPlace*:*InsufficientWorkspace*:*EmptyTensors*:*CheckTargetsRefuses*:DistributedCuda.*:-$ALWAYS_OUT" ;;
    racecheck)  # shared memory: block reductions (region, element-wise), sort and scan (Lovász)
      echo "Dtypes/*:*RepeatedCallsAreBitwiseDeterministic:LovaszCuda.TiesAreBrokenByElementIndexLikeTheCpu:-$ALWAYS_OUT" ;;
    initcheck)  # workspace and partial sums read before written
      echo "Dtypes/*:*CallerWorkspaceGivesTheSameBitsAsLibraryAllocation:*LossOutOnDeviceAndOnHost*:DistributedCuda.StatsVectorsMatchTheCpuBackend:-$ALWAYS_OUT" ;;
    synccheck)
      echo "Dtypes/*:*NonDefaultStreamOrdersTheWork:*CapturedIntoACudaGraph*:-$ALWAYS_OUT" ;;
    *) echo "*:-$ALWAYS_OUT" ;;
  esac
}

extra_for() {
  case $1 in
    memcheck) echo "--leak-check full" ;;
    racecheck) echo "--racecheck-report all" ;;
    *) echo "" ;;
  esac
}

status=0
say "sanitize_cuda: $CS on $BIN, cap ${CAP}s per tool"
for tool in $TOOLS; do
  filter=$(filter_for "$tool")
  log=$OUTDIR/$tool.log
  start=$(date +%s)
  # shellcheck disable=SC2046 # the extra options are words
  timeout -k 5 "$CAP" "$CS" --tool "$tool" $(extra_for "$tool") --error-exitcode 86 \
    --print-limit 200 "$BIN" --gtest_brief=1 --gtest_filter="$filter" >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  line=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -n 1 | sed 's/^========= //')
  tests=$(grep -E '^\[  (PASSED|FAILED)  \]' "$log" | tr '\n' ' ')
  case $rc in
    0) verdict=PASS ;;
    86) verdict=ERRORS; status=1 ;;
    124|137) verdict=TIMEOUT; [ "$status" = 0 ] && status=3 ;;
    *) verdict="FAIL(rc=$rc)"; status=1 ;;
  esac
  say "$(printf '%-10s %-12s %4ss  %s  %s  [%s]' "$tool" "$verdict" "$secs" "${line:-no summary line}" "$tests" "$filter")"
done
say "sanitize_cuda: exit $status (logs in $OUTDIR)"
exit $status
